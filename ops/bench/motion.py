#!/usr/bin/env python
"""Motion gating on CCTV-like footage: what the gate saves, what it costs (the gate alone).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ops/bench/motion.py
    python ops/bench/motion.py --minutes 5 --moving-minutes 2      # quicker

Footage (generated once under ``bench-out/cctv/`` with :mod:`vidsearch.demo.cctv`): 1080p at
5 fps, H.264 CRF 28 with a keyframe every 2 s, a static textured scene with sensor noise and
lighting drift, a red figure in view ~10 % of the time at known intervals; and the same scene
with the camera sweeping all the time ("moving": everything changes).

Measured, sampling 1 fps and decoding as ingest does (short side = the model's 224 px, centre crop),
in 60 s chunks with a fresh :class:`vidsearch.core.motion.MotionGate` each (as a worker would):

* ``decode``: decoding alone; ``decode+gate``: the same plus the gate's decisions;
* the fraction of sampled frames the gate sends to the encoder;
* correctness against the ground truth: every sampled frame whose reused embedding comes from a
  frame with a different subject state (present / absent) is an error;
* chunking: the decisions of 60 s chunks vs one pass over the whole file (must be identical);
* events for "red" with the colours demo model (32 px crops), every frame embedded vs gated:
  identical within 1 s, and the subject's known visits;
* a projection of ingest time with the image encoder (``--model``, default the random ViT-B/32
  of ``ops/bench/encoder.py`` when built): decode + gate + embedded frames / encoder images/s,
  measured in the same run.

``--ingest`` measures the real thing instead: the whole ``vidsearch ingest`` command (a
subprocess, a fresh index each time; wall seconds and the child's CPU seconds) with
``--motion auto`` and ``--motion off`` one after the other, for the ViT-B/32-sized random-weight
model and its int8 tower (``ops/bench/encoder_int8.py`` builds both under ``--work``) on the
static footage, and for the fp32 model on the moving footage; then the colours demo model gated
and ungated on the static footage and ``vidsearch events red`` of both (identical within 1 s?).
The colours model costs next to nothing, so its gated run is the floor of any gated run on this
footage (decoding, gating, the command itself): ungated fp32 over it ("ceiling") is the most
gating could give here even with a free encoder.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ops/bench/motion.py --ingest --work /work/bench-cache

``--regions N`` times ``vidsearch ingest --regions N`` (the whole frame and an N x N grid of tiles,
each embedded) of 5 min of the static footage: ``--motion off``, ``auto`` (each region gated on its
own) and, with ``--baseline DIR``, ``auto`` run from an older checkout whose gate re-embedded every
region of a frame that changed anywhere:

    git worktree add /tmp/before-per-region 54a06bc     # the commit before per-region gating
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ops/bench/motion.py --regions 3 \
        --baseline /tmp/before-per-region --work /work/bench-cache
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vidsearch.core import motion as M  # noqa: E402
from vidsearch.core.plan import Sampling, plan_chunks  # noqa: E402
from vidsearch.core.preprocess import center_crop  # noqa: E402
from vidsearch.demo.cctv import Footage, make_cctv, make_moving  # noqa: E402
from vidsearch.media.video import iter_frames  # noqa: E402

SIZE = 224
FIGURE = 0.6  # the subject's height / the frame's: near the camera, so the colours-only demo model sees it


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def footage(work: Path, kind: str, minutes: float, size=(1920, 1080), fps: int = 5,
            figure: float = FIGURE) -> tuple[Footage, float]:
    """The generated file (reused when its parameters match) and the seconds it took to generate (0: reused)."""
    path = work / "cctv" / f"{kind}-{minutes:g}min-{size[1]}p-fig{figure:g}.mp4"
    stamp = path.with_suffix(".json")
    if path.is_file() and stamp.is_file():
        d = json.loads(stamp.read_text())
        return Footage(path, d["duration"], tuple(d["size"]), d["fps"], [tuple(v) for v in d["subject"]], d["colour"], d["pan"]), 0.0
    log(f"generating {path.name} ({minutes:g} min of {size[1]}p at {fps} fps) ...")
    t0 = time.perf_counter()
    make = make_moving if kind == "moving" else make_cctv
    f = make(path, minutes * 60.0, size, fps, figure=figure, **({"subject": []} if kind == "moving" else {}))
    took = time.perf_counter() - t0
    stamp.write_text(json.dumps({"duration": f.duration, "size": list(f.size), "fps": f.fps, "subject": f.subject,
                                 "colour": f.colour, "pan": f.pan}))
    log(f"  {took:.0f} s, {path.stat().st_size / 1e6:.0f} MB")
    return f, took


def run(f: Footage, gate_on: bool, chunk_s: float = 60.0, max_reuse_s: float = 60.0) -> dict:
    """Decode (+ gate) the file in chunks; returns timings and the decisions."""
    times, flags = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    gate_s = 0.0
    for start, end in plan_chunks(f.duration, chunk_s):
        gate = M.MotionGate(max_reuse_s=max_reuse_s)
        for t, img in iter_frames(f.path, start, end, Sampling("fps", 1.0), SIZE):
            crop = center_crop(img, SIZE)
            if gate_on:
                g0 = time.perf_counter()
                flags.append(gate.decide(t, crop))
                gate_s += time.perf_counter() - g0
            times.append(t)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "gate_s": gate_s,
            "times": times, "embed": flags}


def errors(f: Footage, times: list[float], embed: list[bool]) -> int:
    src = M.reuse_sources(embed)
    return sum(f.subject_at(t) != f.subject_at(times[s]) for t, s in zip(times, src))


def encoder_rate(model: str | None, work: Path, seconds: float = 6.0) -> tuple[str, float, float] | None:
    """(model id, images per wall second, CPU seconds per image) at batch 32."""
    from vidsearch.models.contract import load_model_info
    from vidsearch.models.encoder import Encoder

    path = Path(model) if model else work / "models" / "vit-b-32-random"
    try:
        info = load_model_info(path)
    except Exception as e:  # noqa: BLE001 - no model: no projection
        log(f"no encoder projection ({e})")
        return None
    enc = Encoder(info, providers="cpu")
    x = np.random.default_rng(0).standard_normal((32, 3, info.image_size, info.image_size), dtype=np.float32)
    enc.encode_images(x)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds or n < 2:
        enc.encode_images(x)
        n += 1
    return info.model_id, 32 * n / (time.perf_counter() - t0), (time.process_time() - c0) / (32 * n)


def events_check(f: Footage, tmp: Path) -> dict:
    """Events for "red" with the colours demo model: every frame embedded vs gated (60 s chunks)."""
    from vidsearch.core.preprocess import to_tensor
    from vidsearch.demo.models import colour_model
    from vidsearch.models.encoder import Encoder
    from vidsearch.retro.events import thresholds, video_events

    info = colour_model(tmp / "demo-colours")
    enc = Encoder(info, providers="cpu")
    pts, every, flags = [], [], []
    for start, end in plan_chunks(f.duration, 60.0):
        gate, crops = M.MotionGate(max_reuse_s=60.0), []
        for t, img in iter_frames(f.path, start, end, Sampling("fps", 1.0), info.image_size):
            crops.append(center_crop(img, info.image_size))
            pts.append(t)
            flags.append(gate.decide(t, crops[-1]))
        every.append(enc.encode_images(to_tensor(crops, info.mean, info.std)))
    every = np.concatenate(every)
    gated = M.expand(every[np.asarray(flags)], flags)
    q = enc.encode_texts(["red"])[0]
    out = {"fraction_embedded": float(np.mean(flags)), "truth": f.subject}
    for name, emb in (("ungated", every), ("gated", gated)):
        s = emb @ q
        high, low = thresholds(s)
        out[name] = [(e.start, e.end) for e in video_events("v", np.asarray(pts), s, high, low, duration=f.duration).events]
    a, b = out["ungated"], out["gated"]
    out["identical_within_1s"] = len(a) == len(b) and all(abs(x0 - y0) <= 1 and abs(x1 - y1) <= 1 for (x0, x1), (y0, y1) in zip(a, b))
    return out


def report(name: str, f: Footage, plain: dict, gated: dict, one_pass: dict | None, rate) -> dict:
    n, k = len(gated["times"]), int(sum(gated["embed"]))
    row = {"footage": name, "minutes": f.duration / 60, "subject_fraction": round(f.subject_fraction, 3), "frames": n,
           "embedded": k, "fraction_embedded": k / n if n else 0.0, "decode_s": plain["wall_s"],
           "decode_gate_s": gated["wall_s"], "gate_ms_per_frame": 1000 * gated["gate_s"] / max(n, 1),
           "state_errors": errors(f, gated["times"], gated["embed"]) if f.subject else 0,
           "chunks_match_one_pass": None if one_pass is None else one_pass["embed"] == gated["embed"]}
    if rate:
        model, ips, cpu_per_image = rate
        row.update(model=model, encoder_images_per_s=ips, encoder_cpu_s_per_image=cpu_per_image,
                   decode_cpu_s=plain["cpu_s"], decode_gate_cpu_s=gated["cpu_s"],
                   projected_ungated_s=plain["wall_s"] + n / ips, projected_gated_s=gated["wall_s"] + k / ips,
                   projected_ungated_cpu_s=plain["cpu_s"] + n * cpu_per_image,
                   projected_gated_cpu_s=gated["cpu_s"] + k * cpu_per_image)
        row["projected_speedup"] = row["projected_ungated_s"] / row["projected_gated_s"]
        row["projected_speedup_cpu"] = row["projected_ungated_cpu_s"] / row["projected_gated_cpu_s"]
    return row


def cli_run(work: Path, footage: Path, model: Path, motion: str, tag: str, extra: tuple[str, ...] = (), repo: Path = REPO) -> dict:
    """One whole ``vidsearch ingest`` command into a fresh index: its JSON summary, wall and CPU seconds
    (``repo``: the checkout whose ``vidsearch`` runs, for a baseline)."""
    import resource
    import shutil
    import subprocess

    index = work / "ingest-runs" / tag
    shutil.rmtree(index, ignore_errors=True)
    cmd = [sys.executable, "-m", "vidsearch", "--index", str(index), "ingest", str(footage), "--model", str(model),
           "--motion", motion, "--json", "-q", *extra]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=repo)  # -m puts the cwd first
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rep = json.loads(out.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    row = {"run": tag, "motion": motion, "wall_s": wall, "cpu_s": cpu, "frames": rep["frames"],
           "frames_embedded": rep["frames_embedded"], "loadavg": os.getloadavg()[0], "index": str(index),
           **{k: rep[k] for k in ("region_rows", "region_rows_embedded") if k in rep}}
    log(f"  {tag}: {wall:.0f} s wall, {cpu:.0f} CPU-s, {rep['frames_embedded']} of {rep['frames']} embedded, "
        f"load {row['loadavg']:.1f}")
    return row


def cli_events(index: str, model: Path, *extra: str) -> tuple[list[tuple[float, float]], dict]:
    """``vidsearch events red``: (start, end) of each event, and the thresholds it used."""
    import subprocess

    out = subprocess.run([sys.executable, "-m", "vidsearch", "--index", index, "events", "red", "--model", str(model), "--json", *extra],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    return [(e["start"], e["end"]) for v in d["videos"] for e in v["events"]], {"high": d["high"], "low": d["low"]}


def same_within_1s(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(abs(x0 - y0) <= 1 and abs(x1 - y1) <= 1 for (x0, x1), (y0, y1) in zip(a, b))


def ingest_bench(args, static: Footage, moving: Footage) -> dict:
    """The whole ``vidsearch ingest`` command, gated vs ``--motion off``, in this run."""
    import types

    sys.path.insert(0, str(REPO / "ops" / "bench"))
    from encoder_int8 import get_models

    from vidsearch.demo.models import colour_model

    work = Path(args.work)
    fp32, int8, _ = get_models(types.SimpleNamespace(model=args.model, work=str(work)))
    colours = colour_model(work / "models" / "demo-colours")
    plan = [("static", static, "fp32", fp32.path), ("static", static, "int8", int8.path),
            ("moving", moving, "fp32", fp32.path), ("static", static, "colours", colours.path)]
    rows = []
    for name, f, label, model in plan:
        if name == "moving" and args.no_moving:
            continue
        log(f"ingest {name} with {label} ...")
        for motion in ("off", "auto"):
            rows.append({"footage": name, "model": label, **cli_run(work, f.path, Path(model), motion, f"{name}-{label}-{motion}")})
    pairs = {}
    for r in rows:
        pairs.setdefault((r["footage"], r["model"]), {})[r["motion"]] = r
    out = {"rows": rows, "ratios": {}}
    for (name, label), d in pairs.items():
        out["ratios"][f"{name}/{label}"] = {"wall": d["off"]["wall_s"] / d["auto"]["wall_s"], "cpu": d["off"]["cpu_s"] / d["auto"]["cpu_s"],
                                            "fraction_embedded": d["auto"]["frames_embedded"] / d["auto"]["frames"]}
    if ("static", "int8") in pairs and ("static", "fp32") in pairs:
        a, b = pairs[("static", "fp32")], pairs[("static", "int8")]
        out["ratios"]["static/fp32-off vs int8-auto"] = {"wall": a["off"]["wall_s"] / b["auto"]["wall_s"], "cpu": a["off"]["cpu_s"] / b["auto"]["cpu_s"]}
        out["ratios"]["static/int8 vs fp32 (off)"] = {"wall": a["off"]["wall_s"] / b["off"]["wall_s"], "cpu": a["off"]["cpu_s"] / b["off"]["cpu_s"]}
    if ("static", "colours") in pairs and ("static", "fp32") in pairs:
        # the colours model costs next to nothing: its gated run is decoding + gating + the command's
        # own overhead, the floor of any gated run; ungated fp32 over it bounds what gating can give
        a, c = pairs[("static", "fp32")]["off"], pairs[("static", "colours")]["auto"]
        out["ratios"]["ceiling: static/fp32-off vs colours-auto"] = {"wall": a["wall_s"] / c["wall_s"], "cpu": a["cpu_s"] / c["cpu_s"]}
    c = pairs[("static", "colours")]
    # each index with its own automatic thresholds (half-way from the median score to the best), then
    # both with the ungated run's: the second compares what gating did to the scores alone
    (off, th), (auto, th_auto) = (cli_events(c[m]["index"], colours.path) for m in ("off", "auto"))
    fixed = ("--high", str(th["high"]), "--low", str(th["low"]))
    auto_fixed, _ = cli_events(c["auto"]["index"], colours.path, *fixed)
    ev = {"off": off, "auto": auto, "thresholds_off": th, "thresholds_auto": th_auto,
          "identical_within_1s": same_within_1s(off, auto), "auto_with_off_thresholds": auto_fixed,
          "identical_within_1s_same_thresholds": same_within_1s(off, auto_fixed), "truth": static.subject}
    out["events"] = ev
    return out


def regions_bench(args) -> dict:
    """``vidsearch ingest --regions N`` of the static footage with the ViT-B/32-sized model: ``--motion
    off``, ``auto`` (each region gated on its own), and ``auto`` run from ``--baseline`` (a checkout
    from before per-region gating, where a frame that changed re-embedded all its regions), in this run."""
    import types

    sys.path.insert(0, str(REPO / "ops" / "bench"))
    from encoder_int8 import get_models

    from vidsearch.core.regions import count

    work = Path(args.work)
    f, _ = footage(work, "static", args.regions_minutes, figure=args.figure)
    fp32, _, _ = get_models(types.SimpleNamespace(model=args.model, work=str(work)))
    extra = ("--regions", str(args.regions))
    per = count(args.regions)
    runs = [("off", REPO, "off"), ("auto", REPO, "auto")]
    if args.baseline:
        runs.append(("auto", Path(args.baseline).resolve(), "auto-whole-frame"))
    rows = []
    for motion, repo, label in runs:
        log(f"ingest --regions {args.regions} --motion {motion} ({label}) ...")
        r = cli_run(work, f.path, Path(fp32.path), motion, f"regions{args.regions}-{label}", extra, repo)
        r.setdefault("region_rows", r["frames"] * per)
        r.setdefault("region_rows_embedded", r["frames_embedded"] * per)  # the baseline re-embedded whole frames
        rows.append({"label": label, **r})
    by = {r["label"]: r for r in rows}
    ratios = {f"off vs {k}": {"wall": by["off"]["wall_s"] / by[k]["wall_s"], "cpu": by["off"]["cpu_s"] / by[k]["cpu_s"]}
              for k in by if k != "off"}
    if "auto-whole-frame" in by:
        a, b = by["auto-whole-frame"], by["auto"]
        ratios["whole-frame vs per-region gating"] = {"wall": a["wall_s"] / b["wall_s"], "cpu": a["cpu_s"] / b["cpu_s"]}
    return {"footage": str(f.path), "minutes": args.regions_minutes, "figure": args.figure, "regions": args.regions,
            "rows": rows, "ratios": ratios, "truth": f.subject}


def print_regions(res: dict) -> None:
    print(f"\nWhole `vidsearch ingest --regions {res['regions']}` command, {res['minutes']:g} min static 1080p, figure "
          f"{res['figure']:g} of the frame's height, 1 fps, ViT-B/32-sized fp32 (same run; CPU = the child's user+sys)")
    print(f"{'run':18s} {'wall s':>8s} {'CPU s':>8s} {'frames embedded':>16s} {'crops embedded':>18s} {'load':>5s}")
    for r in res["rows"]:
        print(f"{r['label']:18s} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['frames_embedded']:7d}/{r['frames']:<7d} "
              f"{r['region_rows_embedded']:6d}/{r['region_rows']:<6d} {100 * r['region_rows_embedded'] / r['region_rows']:5.1f}% "
              f"{r['loadavg']:5.1f}")
    for k, v in res["ratios"].items():
        print(f"  {k:36s} wall x{v['wall']:.2f}  CPU x{v['cpu']:.2f}")


def print_ingest(res: dict) -> None:
    print("\nWhole `vidsearch ingest` command, 1 fps, 60 s chunks, --motion off vs auto (same run; CPU = the child's user+sys)")
    print(f"{'footage':8s} {'model':8s} {'motion':6s} {'wall s':>8s} {'CPU s':>8s} {'embedded':>14s} {'load':>5s}")
    for r in res["rows"]:
        print(f"{r['footage']:8s} {r['model']:8s} {r['motion']:6s} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} "
              f"{r['frames_embedded']:5d}/{r['frames']:<5d} {100 * r['frames_embedded'] / r['frames']:5.1f}% {r['loadavg']:5.1f}")
    for k, v in res["ratios"].items():
        print(f"  {k:42s} wall x{v['wall']:.2f}  CPU x{v['cpu']:.2f}")
    ev = res["events"]
    print(f"Events for 'red', colours demo model, gated vs ungated, each with its automatic thresholds: "
          f"identical within 1 s: {ev['identical_within_1s']} (high/low: ungated {ev['thresholds_off']['high']}/"
          f"{ev['thresholds_off']['low']}, gated {ev['thresholds_auto']['high']}/{ev['thresholds_auto']['low']})")
    print(f"  truth   {ev['truth']}\n  ungated {ev['off']}\n  gated   {ev['auto']}")
    print(f"  gated with the ungated thresholds {ev['auto_with_off_thresholds']}: identical within 1 s: "
          f"{ev['identical_within_1s_same_thresholds']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="length of the static-camera footage (default 20)")
    ap.add_argument("--moving-minutes", type=float, default=5.0, help="length of the moving footage (default 5)")
    ap.add_argument("--model", help="image encoder for the projection (default: bench-out/models/vit-b-32-random)")
    ap.add_argument("--no-one-pass", action="store_true", help="skip the chunks-vs-one-pass check")
    ap.add_argument("--no-events", action="store_true", help="skip the events check with the colours demo model")
    ap.add_argument("--ingest", action="store_true", help="time the whole `vidsearch ingest` command instead (see above)")
    ap.add_argument("--no-moving", action="store_true", help="with --ingest: skip the moving footage")
    ap.add_argument("--regions", type=int, help="time `vidsearch ingest --regions N` off vs auto instead (see regions_bench)")
    ap.add_argument("--regions-minutes", type=float, default=5.0, help="with --regions: length of the static footage (default 5)")
    ap.add_argument("--baseline", help="with --regions: a checkout from before per-region gating, timed in the same run")
    ap.add_argument("--figure", type=float, default=FIGURE,
                    help=f"with --regions: the subject's height / the frame's (default {FIGURE}: near the camera; 0.34: across the room)")
    ap.add_argument("--work", default=str(REPO / "bench-out"))
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    work = Path(args.work)
    log(f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}")
    if args.regions:
        res = regions_bench(args)
        print_regions(res)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({**res, "loadavg_end": os.getloadavg()}, indent=2) + "\n")
        return 0
    static, gen_s = footage(work, "static", args.minutes)
    moving, gen_m = footage(work, "moving", args.moving_minutes)
    if args.ingest:
        res = ingest_bench(args, static, moving)
        print_ingest(res)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({**res, "loadavg_end": os.getloadavg()}, indent=2) + "\n")
        return 0
    rate = encoder_rate(args.model, work)
    rows = []
    for name, f in (("static", static), ("moving", moving)):
        log(f"{name}: decode only, decode + gate ...")
        plain, gated = run(f, False), run(f, True)
        one = None if args.no_one_pass else run(f, True, chunk_s=f.duration + 1)
        rows.append(report(name, f, plain, gated, one, rate))
    print(f"\nMotion gate alone (1080p H.264 at 5 fps, sampled at 1 fps, {SIZE} px crops, 60 s chunks; "
          f"generation {gen_s:.0f} s / {gen_m:.0f} s, 0 = reused)")
    print(f"{'footage':8s} {'min':>4s} {'frames':>6s} {'embedded':>9s} {'decode s':>9s} {'+gate s':>8s} {'gate ms/f':>9s} "
          f"{'errors':>6s} {'chunks=1 pass':>13s}")
    for r in rows:
        print(f"{r['footage']:8s} {r['minutes']:4.0f} {r['frames']:6d} {r['fraction_embedded']:9.1%} {r['decode_s']:9.1f} "
              f"{r['decode_gate_s']:8.1f} {r['gate_ms_per_frame']:9.2f} {r['state_errors']:6d} {str(r['chunks_match_one_pass']):>13s}")
    if rate:
        print(f"\nProjected ingest with {rate[0]}: {rate[1]:.1f} images/s, {rate[2]:.3f} CPU-s per image "
              "(decode + gate + embedded frames x encoder cost; CPU seconds hold better on a loaded machine):")
        for r in rows:
            print(f"  {r['footage']:8s} wall: ungated {r['projected_ungated_s']:6.0f} s, gated {r['projected_gated_s']:6.0f} s, "
                  f"x{r['projected_speedup']:.2f} | CPU: decode {r['decode_cpu_s']:5.0f} s, +gate {r['decode_gate_cpu_s']:5.0f} s, "
                  f"ungated {r['projected_ungated_cpu_s']:6.0f} s, gated {r['projected_gated_cpu_s']:6.0f} s, "
                  f"x{r['projected_speedup_cpu']:.2f}")
    ev = None
    if not args.no_events:
        import tempfile

        log("events with the colours demo model, gated vs ungated ...")
        with tempfile.TemporaryDirectory() as tmp:
            ev = events_check(static, Path(tmp))
        print(f"\nEvents for 'red' (colours demo model, {ev['fraction_embedded']:.1%} of frames embedded at 32 px): "
              f"identical within 1 s: {ev['identical_within_1s']}")
        print(f"  truth   {ev['truth']}\n  ungated {ev['ungated']}\n  gated   {ev['gated']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows, "events": ev, "loadavg": os.getloadavg()[0]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
