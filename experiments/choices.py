"""The command line's fixed choices, in a module that imports nothing heavy.

``python -m experiments --help`` builds its parser from these alone, so it answers without importing
torch or Lightning. The modules that use each choice import it from here; ``COMBINES`` mirrors
:data:`lightning_modules.inference.COMBINES` (a test keeps them equal: ``lightning_modules`` may not
import ``experiments``); ``DATA_ROOT_ENV`` and ``DOWNLOAD_DIR_ENV`` mirror :mod:`datamodules.store.root`'s.
"""

PROFILES = ("smoke", "small", "paper")
WANDB_MODES = ("offline", "online", "disabled")
COMBINES = ("softmax", "logits", "exp_sum")
DATA_ROOT_ENV = "ATTN_DATA_ROOT"
DOWNLOAD_DIR_ENV = "ATTN_DOWNLOAD_DIR"
