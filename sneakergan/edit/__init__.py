"""The edit stage: everything behind the editor, usable from Python and the command line.

state.py       EditState: model + seed/latent + psi + direction edits + style mixes + noise; URL-safe tokens
layers.py      what 'coarse' / 'middle' / 'fine' / "a-b" mean for a model's ws
directions.py  SeFa and GANSpace directions, NAME.directions.json beside the model
render.py      Renderer: EditState -> uint8 image, cached per mapping / styles / synthesis block, batched
latents.py     projected latents, NAME.latents/<id>.safetensors
interpolate.py paths between states, latent walks, GIF / MP4 / frame strips
project.py     photo -> w (W or W+) + noise by optimisation
commands.py    the CLI: directions, mix, interpolate, walk, project, render
"""
