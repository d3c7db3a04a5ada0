-- The DuckDB catalog (catalog.duckdb) of a vidsearch index. Loaded by vidsearch/index/catalog.py.
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS files (
    path VARCHAR PRIMARY KEY,
    size BIGINT,
    mtime_ns BIGINT,
    video_id VARCHAR,
    status VARCHAR,            -- indexed | partial | failed | pending
    error VARCHAR,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS videos (
    video_id VARCHAR PRIMARY KEY,  -- SHA-256 of the file content
    path VARCHAR,
    size BIGINT,
    duration DOUBLE,
    width INTEGER,
    height INTEGER,
    fps DOUBLE,
    codec VARCHAR,
    creation_time VARCHAR,
    first_seen TIMESTAMP,
    last_seen TIMESTAMP
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id VARCHAR PRIMARY KEY,
    video_id VARCHAR,
    model_id VARCHAR,
    start_s DOUBLE,
    end_s DOUBLE,
    sampling VARCHAR,
    status VARCHAR,            -- pending | done | partial | failed
    frames INTEGER,
    shard VARCHAR,
    error VARCHAR,
    updated_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS models (
    model_id VARCHAR PRIMARY KEY,
    slug VARCHAR,
    name VARCHAR,
    dim INTEGER,
    info VARCHAR,
    last_used TIMESTAMP
);
-- Added later (an older index gains them when an ingest or `status` opens it): how much of its
-- span a done chunk's frames cover; missing: JSON [[start, end], ...] of the stretches without frames.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS covered_s DOUBLE;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS missing_s DOUBLE;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS missing VARCHAR;
-- Added with motion gating: of a done chunk's frames, how many went through the image encoder
-- (the rest reuse an embedding, docs/motion.md); NULL where the marker has no count (shards from before gating).
-- A catalog that gains the column re-reads every marker once (meta key chunk_facts).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedded INTEGER;
-- Added with upright frames: degrees counter-clockwise a video's picture is turned to show it (a
-- phone's portrait video); width x height are then as shown. NULL: probed by an older version (the
-- next ingest probes it again, and redoes the chunks of a turned video embedded on their side).
ALTER TABLE videos ADD COLUMN IF NOT EXISTS rotation INTEGER;
