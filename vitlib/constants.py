"""Constants several chapters share, in one place (chapters 01, 05).

IGNORE_INDEX      the label value a cross-entropy skips (PyTorch's default ``ignore_index``): padding and,
                  in chapter 11, the prompt tokens whose loss is masked.
LOGIT_SCALE_INIT  CLIP's learnable ``logit_scale`` = ln(1 / tau) starts at ln(1 / 0.07) (Radford et al., 2021).
LOGIT_SCALE_MAX   ... and is kept at most ln(100), i.e. tau >= 0.01, so that the logits cannot blow up.
"""

import math

__all__ = ["IGNORE_INDEX", "LOGIT_SCALE_INIT", "LOGIT_SCALE_MAX"]

IGNORE_INDEX = -100
LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)
