"""Trust regions for language-model policies: GRPO, GRPO-KL, TRPO and NPG on the tokens of a causal LM.

An optional part of natgrad (``pip install natgrad[lm]`` for ``transformers`` and ``peft``; the policy may also be a
plain ``nn.Module``); ``import natgrad`` does not import it. In the order one update uses them:

- ``config``: the frozen configurations (TRL's names where users know them).
- ``prompts``: where prompts come from; the reward functions and their weights.
- ``sampling``: left-padded prompts, the sampling loop (KV cache), scoring at the positions sampled at.
- ``losses``: group-relative advantages, TRL's per-token loss and its aggregations, k3, the exact token KL.
- ``fisher``: the exact token Fisher through the network, F v = Jᵀ M J v.
- ``engine``: the loop every update shares (sample, reward, advantages, update, measure), save and load.
- ``grpo``: GRPO and GRPO-KL (Adam on the per-token loss).
- ``trust_region``: TRPO and NPG (natgrad's natural step with the token Fisher).
- ``training``: a run directory (metrics.csv, episodes.csv, TensorBoard, the policy) that ``natgrad plot`` reads.
"""

from natgrad.lm.config import GRPOConfig, GRPOKLConfig, LMConfig, TrustRegionConfig
from natgrad.lm.engine import LMAlgorithm, load_policy
from natgrad.lm.grpo import GRPO, GRPOKL
from natgrad.lm.trust_region import NPG, TRPO

ALGORITHMS: dict[str, type[LMAlgorithm]] = {cls.name: cls for cls in (GRPO, GRPOKL, TRPO, NPG)}
"""The updates by name: ``grpo``, ``grpo-kl``, ``trpo``, ``npg``."""

__all__ = ["ALGORITHMS", "GRPO", "GRPOKL", "GRPOConfig", "GRPOKLConfig", "LMAlgorithm", "LMConfig", "NPG", "TRPO",
           "TrustRegionConfig", "load_policy"]
