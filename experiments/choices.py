"""The command line's fixed choices, in a module that imports nothing heavy.

``python -m experiments --help`` builds its parser from these alone, so it answers without importing
torch or Lightning. The modules that use each choice import it from here; ``COMBINES`` mirrors
:data:`lightning_modules.inference.COMBINES` (a test keeps them equal: ``lightning_modules`` may not
import ``experiments``).
"""

PROFILES = ("smoke", "small", "paper")
WANDB_MODES = ("offline", "online", "disabled")
COMBINES = ("softmax", "logits", "exp_sum")
