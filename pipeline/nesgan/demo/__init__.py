"""The embedded NES screenshot museum: a seeded synthesizer of NES-legal screens (`synth`) and
a small loopback HTTP site serving them in the shape of The Video Game Museum (`site`)."""

from nesgan.demo.synth import (
    Frame,
    Game,
    frame_rgb,
    frame_violations,
    make_game,
    make_games,
    render_frame,
    render_scrolled,
)

__all__ = ["Frame", "Game", "frame_rgb", "frame_violations", "make_game", "make_games",
           "render_frame", "render_scrolled"]
