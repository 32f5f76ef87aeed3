"""natgrad.lm: the token Fisher against the explicit Hessian of the mean token KL, TRL's GRPO loss against a
transcription of its documented formula, scoring at the positions sampled at, padding that changes nothing, the
trust region kept, and what a user sees (save/load, one-line errors)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from natgrad.errors import NatgradError  # noqa: E402
from natgrad.lm import GRPO, GRPOKL, NPG, TRPO, load_policy  # noqa: E402
from natgrad.lm.config import GRPOConfig  # noqa: E402
from natgrad.lm.engine import Batch  # noqa: E402
from natgrad.lm.fisher import LinearizedLM, differentiable_attention  # noqa: E402
from natgrad.lm.grpo import grpo_loss  # noqa: E402
from natgrad.lm.losses import clipped_objective, group_advantages, token_kl, token_log_probs  # noqa: E402
from natgrad.lm.sampling import Rollout, completion_logits, generate  # noqa: E402
from natgrad.natural.flat import flat_params  # noqa: E402
from natgrad.policy.distributions import Categorical  # noqa: E402

V, EOS = 16, 1
PROMPTS = [[3, 4, 5], [6, 7], [8, 9, 10, 11], [12]]


def llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=V, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=16, eos_token_id=EOS, bos_token_id=2, pad_token_id=0)
    return transformers.LlamaForCausalLM(config).double().eval()


def gpt2() -> torch.nn.Module:
    """Learned absolute positions: scoring at the wrong positions shows at once."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=V, n_embd=8, n_layer=1, n_head=2, n_positions=16, eos_token_id=EOS,
                                     bos_token_id=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config).double().eval()


MODELS = {"llama": llama, "gpt2": gpt2}


def rollout(model: torch.nn.Module, seed: int = 0) -> Rollout:
    """Prompts of different lengths, completions that end at EOS at different steps."""
    return generate(model, [p for p in PROMPTS for _ in range(2)], max_new_tokens=5, temperature=1.0,
                    eos=frozenset({EOS}), generator=torch.Generator().manual_seed(seed))


def with_eos(r: Rollout) -> Rollout:
    """``r`` with EOS forced at completion step 1 of row 0 (padding after it), so padding is always there."""
    ids, mask, p = r.input_ids.clone(), r.attention_mask.clone(), r.prompt_length
    ids[0, p + 1], ids[0, p + 2:], mask[0, p + 2:] = EOS, 0, 0
    return Rollout(ids, mask, p)


def contains_three(prompts, completions, **columns):
    return [float(3 in c) for c in completions]


@pytest.mark.parametrize("name", list(MODELS))
def test_the_fisher_product_is_the_hessian_of_the_mean_token_kl(name):
    model = MODELS[name]()
    r = with_eos(rollout(model))
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    theta0 = flat_params(params)
    linear = LinearizedLM(model, r, 0.7, params)
    mask = r.completion_mask.double()

    def mean_kl(theta: torch.Tensor) -> torch.Tensor:
        chunks = theta.split([p.numel() for p in params])
        values = {n: c.view_as(p) for n, c, p in zip(names, chunks, params)}
        logits = torch.func.functional_call(model, values, (), {"input_ids": r.input_ids,
                                                                "attention_mask": r.attention_mask,
                                                                "position_ids": r.position_ids}).logits
        logits = logits[:, r.prompt_length - 1: -1] / 0.7
        kl = Categorical(linear.old.logits).kl(Categorical(logits))
        return (kl * mask).sum() / mask.sum()  # padding excluded

    with differentiable_attention():
        hessian = torch.autograd.functional.hessian(mean_kl, theta0, vectorize=True)
    fvp = linear.fisher_vector_product()
    v = torch.randn(theta0.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for u in (v, hessian[0].clone(), torch.ones_like(v)):
        exact = hessian @ u
        assert (fvp(u) - exact).norm() <= 1e-6 * exact.norm()


def test_the_softmax_fisher_product_is_diag_p_minus_p_p_transposed():
    logits = torch.randn(3, 5, V, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u = torch.randn(3, 5, V, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p = torch.softmax(logits, -1)
    explicit = torch.einsum("btij,btj->bti", torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2), u)
    torch.testing.assert_close(Categorical(logits).fisher(u)[0], explicit, rtol=1e-12, atol=1e-14)


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0], dtype=torch.float64)
    std = math.sqrt(4 * 0.25 / 3)  # Bessel's correction, as torch.std
    expected = torch.tensor([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(group_advantages(rewards, 4, scale=False), expected)
    torch.testing.assert_close(group_advantages(rewards, 4), expected / torch.tensor([std + 1e-4] * 4 + [1e-4] * 4))


def trl_loss(per_token_logps, old_per_token_logps, ref_per_token_logps, advantages, completion_mask, beta, epsilon,
             loss_type, max_completion_length):
    """TRL's GRPOTrainer._compute_loss, transcribed from its documentation (one process, one step per batch)."""
    coef_1 = torch.exp(per_token_logps - old_per_token_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon, 1 + epsilon)
    per_token_loss1 = coef_1 * advantages.unsqueeze(1)
    per_token_loss2 = coef_2 * advantages.unsqueeze(1)
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_kl = (torch.exp(ref_per_token_logps - per_token_logps) - (ref_per_token_logps - per_token_logps)
                        - 1)
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        return ((per_token_loss * completion_mask).sum(-1) / completion_mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token_loss * completion_mask).sum() / completion_mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        return (per_token_loss * completion_mask).sum() / (per_token_loss.size(0) * max_completion_length)
    num_items_in_batch = completion_mask.sum()  # dapo: the tokens of the whole generation batch
    return (per_token_loss * completion_mask).sum() / num_items_in_batch


def a_batch(model: torch.nn.Module, r: Rollout) -> Batch:
    """A batch with random rewards, a reference that differs from the policy, and π_old = the model now."""
    rewards = torch.randint(0, 3, (r.input_ids.shape[0],), generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        old = completion_logits(model, r, 1.0)
    ref = token_log_probs(old + 0.3 * torch.randn(old.shape, dtype=old.dtype, generator=torch.Generator()
                                                  .manual_seed(3)), r.completion_ids)
    return Batch(r, rewards, group_advantages(rewards, 2), old, ref)


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_the_grpo_loss_is_trls(loss_type, beta):
    model = llama()
    r = with_eos(rollout(model))
    batch = a_batch(model, r)
    moved = batch.logits_old + 0.5 * torch.randn(batch.logits_old.shape, dtype=torch.float64,
                                                 generator=torch.Generator().manual_seed(4))  # π_θ ≠ π_old
    logp = token_log_probs(moved, r.completion_ids)
    cfg = GRPOConfig(beta=beta, loss_type=loss_type, epsilon=0.2, max_completion_length=5, num_generations=2)
    ours = grpo_loss(logp, batch, cfg, clipped_objective(logp, batch.log_probs_old, batch.advantages, 0.2))
    theirs = trl_loss(logp, batch.log_probs_old, batch.ref_log_probs, batch.advantages, r.completion_mask.double(),
                      beta, 0.2, loss_type, 5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", list(MODELS))
def test_left_padded_prompts_score_as_each_alone(name):
    model = MODELS[name]()
    r = with_eos(rollout(model))
    with torch.no_grad():
        batched = token_log_probs(completion_logits(model, r, 1.0), r.completion_ids)
        for i in range(r.input_ids.shape[0]):
            real = r.input_ids[i][r.attention_mask[i].bool()][None]  # the row alone: no padding anywhere
            n = int(r.completion_mask[i].sum())
            alone = torch.log_softmax(model(input_ids=real).logits[0, -n - 1: -1], -1)
            expected = alone.gather(-1, real[0, -n:, None])[:, 0]
            torch.testing.assert_close(batched[i, :n], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", list(MODELS))
def test_sampling_with_the_cache_draws_what_recomputing_draws(name):
    """The KV-cache loop (left-padded) and the recomputing one (plain module) give the same tokens: each is sampled
    from the logits at the position the scoring uses."""
    model = MODELS[name]()

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids, attention_mask, position_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits

    cached, recomputed = rollout(model, seed=5), rollout(Plain(), seed=5)
    assert torch.equal(cached.input_ids, recomputed.input_ids)
    assert torch.equal(cached.attention_mask, recomputed.attention_mask)


def test_padding_and_tokens_after_eos_change_nothing():
    model = llama()
    r = with_eos(rollout(model))
    assert (r.attention_mask == 0).any()
    noise = torch.randint(2, V, r.input_ids.shape, generator=torch.Generator().manual_seed(6))
    perturbed = Rollout(torch.where(r.attention_mask.bool(), r.input_ids, noise), r.attention_mask, r.prompt_length)
    batch, other = a_batch(model, r), a_batch(model, perturbed)
    cfg = GRPOConfig(beta=0.04, num_generations=2)
    moved = [b.logits_old + 0.1 for b in (batch, other)]
    for loss_type in ("grpo", "bnpo", "dr_grpo"):
        losses = [grpo_loss(lp, b, cfg.__class__(**{**cfg.to_dict(), "loss_type": loss_type}),
                            clipped_objective(lp, b.log_probs_old, b.advantages, 0.2))
                  for b, lp in ((batch, token_log_probs(moved[0], r.completion_ids)),
                                (other, token_log_probs(moved[1], perturbed.completion_ids)))]
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=1e-14)
    policy, mask = shifted(model), r.completion_mask.double()
    with torch.no_grad():
        kls = [(token_kl(b.logits_old, completion_logits(policy, b.rollout, 1.0)) * mask).sum() for b in (batch, other)]
    torch.testing.assert_close(kls[0], kls[1], rtol=1e-12, atol=1e-14)


def shifted(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every weight moved a little: a π_θ ≠ π_old."""
    import copy
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, dtype=p.dtype, generator=torch.Generator().manual_seed(7)))
    return other


@pytest.mark.parametrize("cls", [TRPO, NPG])
def test_every_accepted_trust_region_step_keeps_the_mean_token_kl_within_delta(cls):
    algo = cls(llama(), PROMPTS, contains_three, num_generations=4, prompts_per_update=2, max_completion_length=5,
               max_kl=0.01).learn(steps=4)
    assert [m["time/steps"] for m in algo.metrics] == [8, 16, 24, 32]
    for m in algo.metrics:
        assert m["policy/kl"] > 0
        if cls is TRPO and m["policy/accepted"]:
            assert m["policy/kl"] <= 0.01
        assert m["policy/kl_max"] >= m["policy/kl"]


def test_trpo_moves_only_the_lora_adapters_of_a_peft_model():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(llama(), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    algo = TRPO(model, PROMPTS, contains_three, num_generations=4, prompts_per_update=2, max_completion_length=5)
    algo.learn(steps=2)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert any(not torch.equal(p, trained[n]) for n, p in model.named_parameters() if n in trained)
    assert all(m["policy/kl"] <= 0.01 for m in algo.metrics if m["policy/accepted"])


class CharTokenizer:
    """A character-level vocabulary: no downloads."""

    eos_token_id = EOS
    chars = "_$^.abcdefghijkl"  # id 1, "$", is EOS

    def encode(self, text: str) -> list[int]:
        return [self.chars.index(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def test_string_rows_with_columns_reach_the_reward_functions():
    seen = {}

    def matches(prompts, completions, answer):
        seen.update(prompts=prompts, completions=completions, answer=answer)
        return [float(c.startswith(a)) for c, a in zip(completions, answer)]

    rows = [{"prompt": "^ab", "answer": "a"}, {"prompt": "^c", "answer": "b"}]
    def length(prompts, completions, **columns):
        return [float(len(c)) for c in completions]

    algo = GRPOKL(llama(), rows, [matches, length], reward_weights=(1.0, 0.0), tokenizer=CharTokenizer(),
                  num_generations=2, prompts_per_update=2, max_completion_length=4).learn(total_samples=5)
    assert len(algo.metrics) == 2  # 5 completions: two updates of 4
    assert all(isinstance(c, str) and "$" not in c for c in seen["completions"])
    assert sorted(seen["prompts"]) == ["^ab", "^ab", "^c", "^c"] and len(seen["answer"]) == 4
    assert algo.metrics[0]["policy/beta"] == 1.0 and algo.metrics[1]["policy/beta"] == 0.5  # a tiny KL halves β


def test_prompts_from_a_generator():
    def endless():
        while True:
            yield from PROMPTS

    algo = GRPO(llama(), endless(), contains_three, num_generations=2, prompts_per_update=3,
                max_completion_length=3, num_iterations=2).learn(steps=2)
    assert algo.metrics[-1]["time/steps"] == 12 and 0 <= algo.metrics[-1]["policy/clip_fraction"] <= 1


def test_save_and_load_give_back_the_policy_and_the_progress(tmp_path):
    algo = GRPOKL(llama(), PROMPTS, contains_three, num_generations=2, max_completion_length=3,
                  learning_rate=1e-2).learn(steps=2)
    path = algo.save(tmp_path / "policy.pt")
    loaded = GRPOKL.load(path, llama(), PROMPTS, contains_three)
    assert loaded.config == algo.config and loaded.num_samples == algo.num_samples
    assert loaded.kl_coef == algo.kl_coef
    assert torch.equal(flat_params(list(loaded.model.parameters())), flat_params(list(algo.model.parameters())))
    assert torch.equal(flat_params(list(load_policy(path, llama()).parameters())),
                       flat_params(list(algo.model.parameters())))
    with pytest.raises(NatgradError, match="holds a grpo-kl run, not trpo"):
        TRPO.load(path, llama(), PROMPTS, contains_three)
    (tmp_path / "junk.pt").write_text("not a policy")
    with pytest.raises(NatgradError, match="file written by save"):
        load_policy(tmp_path / "junk.pt", llama())


def test_natgrad_imports_no_language_model_package():
    code = "import sys, natgrad; assert not {'transformers', 'peft', 'natgrad.lm'} & set(sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize("make, match", [
    (lambda m: GRPO(m, ["abc"], contains_three).learn(steps=1), "string prompts need a tokenizer"),
    (lambda m: GRPO(m, PROMPTS, contains_three, max_kl=0.1), r"unknown GRPOConfig option\(s\) \['max_kl'\]"),
    (lambda m: GRPO(m, PROMPTS, contains_three, loss_type="sum"), "invalid loss_type='sum'"),
    (lambda m: TRPO(m, PROMPTS, contains_three, num_generations=1), "num_generations"),
    (lambda m: GRPO(m, PROMPTS, lambda p, c: [1.0]).learn(steps=1), "one finite number per completion"),
    (lambda m: GRPO(m, PROMPTS, [contains_three], reward_weights=(1.0, 2.0)), "one weight per function"),
    (lambda m: GRPO(m, [[]], contains_three).learn(steps=1), "empty prompt"),
    (lambda m: GRPO(m, PROMPTS, contains_three).learn(), "total_samples"),
])
def test_bad_input_is_one_line_naming_the_fix(make, match):
    with pytest.raises(NatgradError, match=match) as caught:
        make(llama())
    assert "\n" not in str(caught.value)


TASK = '''
import torch, transformers

def make_task():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=16, eos_token_id=1)
    return transformers.LlamaForCausalLM(config), [[3, 4], [5]], lambda prompts, completions, **kw: [
        float(3 in c) for c in completions]
'''


def test_the_cli_trains_a_task_into_a_run_that_plot_reads(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from natgrad.cli import app
    from natgrad.tools.plot import read_run

    (tmp_path / "tinytask.py").write_text(TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    done = CliRunner().invoke(app, ["lm", "train", "--task", "tinytask:make_task", "--algo", "npg", "--samples", "8",
                                    "--set", "num_generations=2", "--set", "prompts_per_update=2",
                                    "--set", "max_completion_length=3",
                                    "--out", str(tmp_path / "run")])
    assert done.exit_code == 0, done.output
    run = read_run(tmp_path / "run")
    assert list(run.metrics["time/steps"]) == [4.0, 8.0] and len(run.episodes[0]) == 8
    assert run.config["algo"] == "lm-npg" and run.config["config"]["num_generations"] == 2
    assert (tmp_path / "run" / "model.pt").is_file()
