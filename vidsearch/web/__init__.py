"""``vidsearch serve``: a local web app for evidence review (search, play, mark, keep, export).

The top layer: HTTP routes over the query, retro, evidence and media services; nothing imports it.
"""
