"""The embedded NES screenshot museum (`nesgan demo-site`, and the data the demo and tests run on).

Entry points: `server.serve(site.Museum(...))` (a loopback HTTP site in the shape of The Video
Game Museum) and `synth.make_games` / `synth.render_frame` (seeded, NES-legal screens).
Modules: `metatiles` (8×8 CHR drawings and 16×16 metatiles), `layout` (where sky, ground, pipes
and ladders go on a screen), `synth` (games and frames), `site` (the pages, robots.txt and quirks
of the real museum), `server` (the museum over HTTP).
"""
