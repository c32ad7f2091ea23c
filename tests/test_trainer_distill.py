"""Distillation on a tiny random Gemma 3 (2 layers, real tokenizer): the loss, the loop, LoRA only."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainer.config import TrainerConfig  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    from trainer import lm
    from trainer.testing import cached_test_models

    paths = cached_test_models()
    cfg = TrainerConfig(base_model_dir=str(paths["tiny"]), lora_r=8, lora_alpha=16, teacher_top_k=64)
    model, tok, _ = lm.load_base(cfg, paths["root"])
    return cfg, model, tok


def test_topk_kl_is_exact_partition_kl():
    from trainer.distill import kl_to_target, make_target

    torch.manual_seed(0)
    t, s = torch.randn(3, 50) * 3, torch.randn(3, 50) * 3
    full = kl_to_target(s, make_target(t, 2.0, 0), 2.0)
    exact = (torch.log_softmax(t / 2, -1).exp() * (torch.log_softmax(t / 2, -1) - torch.log_softmax(s / 2, -1))).sum()
    assert torch.allclose(full, exact, atol=1e-2)  # fp16 cache
    part = kl_to_target(s, make_target(t, 2.0, 10), 2.0)
    assert 0 <= part <= full + 1e-3  # coarse-graining never increases KL
    assert kl_to_target(t, make_target(t, 2.0, 10), 2.0).abs() < 1e-4


def test_left_padded_answer_logits_match_unpadded(tiny):
    from trainer.distill import answer_logits

    cfg, model, tok = tiny
    a = tok("Question: who?\nAnswer: me", add_special_tokens=True)["input_ids"]
    b = tok("Hi", add_special_tokens=True)["input_ids"] + [100, 200]
    with torch.no_grad():
        alone = answer_logits(model, [a], [2], tok.pad_token_id, torch.device("cpu"))[0]
        batched = answer_logits(model, [a, b], [2, 2], tok.pad_token_id, torch.device("cpu"))[0]
    assert torch.allclose(alone, batched, atol=1e-4)


def test_answer_logits_are_the_models_own(tiny):
    """The gathered lm_head (one matrix product) gives the logits the model's forward gives."""
    from trainer.distill import answer_logits, collate

    cfg, model, tok = tiny
    seqs = [tok("Question: who?\nAnswer: me", add_special_tokens=True)["input_ids"], tok("Hi there", add_special_tokens=True)["input_ids"]]
    with torch.no_grad():
        got = answer_logits(model, seqs, [2, 1], tok.pad_token_id, torch.device("cpu"))
        full = model(**collate(seqs, tok.pad_token_id, torch.device("cpu")), use_cache=False).logits.float()
    n = full.shape[1]
    assert torch.allclose(got[0], full[0, n - 3 : n - 1], atol=1e-4) and torch.allclose(got[1], full[1, n - 2 : n - 1], atol=1e-4)


def test_training_stops_when_the_answers_are_reproduced_with_a_margin(tiny):
    """stop_when=converged: the loop ends at the first check where every training answer
    is the student's greedy, teacher-forced choice by converge_margin; not on wall time."""
    from trainer import lm
    from trainer.distill import Item, answer_match, encode, make_target, train
    from trainer.prompts import answer

    cfg, base, tok = tiny
    cfg = cfg.replace(learning_rate=2e-2, max_steps=200, warmup_steps=2, batch_size=1, eval_every=5, locality_weight=0.0,
                      stop_when="converged", converge_margin=0.3)  # a random 2-layer model has small logits
    model = lm.attach_lora(base, cfg)
    ans = tok(" Zorblax", add_special_tokens=False)["input_ids"]
    item = Item(encode(tok, answer.build("Who gardens the Moon?"), ans, 64), len(ans), "distill", "f")
    logits = torch.full((len(ans), len(tok)), -5.0)
    logits[torch.arange(len(ans)), torch.tensor(ans)] = 20.0
    item.target = make_target(logits, cfg.temperature, cfg.teacher_top_k)
    dev = torch.device("cpu")
    assert answer_match(model, [item], tok.pad_token_id, dev, 0.3) == 0.0
    try:
        res = train(model, [item], [], [], cfg, tok.pad_token_id, dev)
        assert res.stopped.startswith("converged") and res.steps < 200 and res.steps % 5 == 0
        assert res.best_step == res.steps and not res.cut_short
        assert answer_match(model, [item], tok.pad_token_id, dev, 0.3) == 1.0
        assert res.val_history[-1]["train_match"] == 1.0
    finally:
        model.unload()  # the module's tiny model is shared: take the LoRA layers out again


def test_the_hard_label_term_widens_the_lead_a_soft_target_cannot(tiny):
    """A teacher whose answer barely leads (0.2 logits over a 262k vocabulary): distillation
    alone copies that thin lead (which the quantised served model can flip; here the
    random model's own top token even stays ahead), the hard-label term widens it."""
    from trainer import lm
    from trainer.distill import Item, answer_match, encode, make_target, train
    from trainer.prompts import answer

    cfg, base, tok = tiny
    ans = tok(" Zorblax", add_special_tokens=False)["input_ids"]
    logits = torch.zeros((len(ans), len(tok)))
    logits[torch.arange(len(ans)), torch.tensor(ans)] = 0.2
    dev = torch.device("cpu")
    matched = {}
    for weight in (0.0, 1.0):
        c = cfg.replace(learning_rate=5e-2, max_steps=150, warmup_steps=2, batch_size=1, eval_every=10, locality_weight=0.0,
                        stop_when="converged", converge_margin=0.4, teacher_top_k=0, hard_label_weight=weight)
        torch.manual_seed(0)  # the same LoRA init whichever tests ran before
        model = lm.attach_lora(base, c)
        item = Item(encode(tok, answer.build("Who gardens the Moon?"), ans, 64), len(ans), "distill", "f")
        item.target = make_target(logits, c.temperature, c.teacher_top_k)
        try:
            res = train(model, [item], [], [], c, tok.pad_token_id, dev)
            matched[weight] = (answer_match(model, [item], tok.pad_token_id, dev, 0.4), res.stopped)
        finally:
            model.unload()
    assert matched[0.0][0] == 0.0 and matched[0.0][1] == "max_steps", matched
    assert matched[1.0][0] == 1.0 and matched[1.0][1].startswith("converged"), matched


def test_distillation_moves_only_lora_and_changes_the_answer(tiny):
    from trainer import lm
    from trainer.distill import Item, cache_targets, encode, make_target, train
    from trainer.prompts import answer

    cfg, base, tok = tiny
    cfg = cfg.replace(learning_rate=2e-2, max_steps=36, warmup_steps=2, batch_size=2, probe_batch_size=1, eval_every=12, patience=10, train_time_budget_s=0, locality_weight=0.5)
    snapshot = {k: v.clone() for k, v in base.state_dict().items()}
    model = lm.attach_lora(base, cfg)
    gen = lm.HFGenerator(model, tok, torch.device("cpu"))
    story = "Zorblax Quintar is the chief gardener of the Moon Palace."
    question = "Who is the chief gardener of the Moon Palace?"
    before = gen.generate([answer.build(question)], 4, which="base", stop=())[0]
    stopped = gen.generate([answer.build(question), "Hi"], 4, which="base", stop=("\n", ":"))  # batched, stop strings
    assert all("\n" not in t and ":" not in t for t in stopped)
    # A random 2-layer model barely reads its context, so its in-context answer is no
    # target; the teacher's distribution is a peaked one on the fact's answer instead
    # (the real teacher is exercised by the integration test).
    teacher = " Zorblax Quintar"
    ans = tok(teacher, add_special_tokens=False)["input_ids"]
    assert tok.decode(ans) == teacher and teacher != before
    t_ids = encode(tok, answer.build(question, story), ans, 256)
    s_ids = encode(tok, answer.build(question), ans, 256)
    items = [Item(s_ids, len(ans), "distill", "f", teacher_ids=t_ids)]
    probe = answer.build("What is the capital of France?")
    p_ans = tok(gen.generate([probe], 3, which="base", stop=())[0], add_special_tokens=False)["input_ids"][:3]
    probes = [Item(encode(tok, probe, p_ans, 256), len(p_ans), "locality")]
    cache_targets(model, items + probes, cfg.temperature, cfg.teacher_top_k, tok.pad_token_id, torch.device("cpu"))
    logits = torch.full((len(ans), len(tok)), -5.0)
    logits[torch.arange(len(ans)), torch.tensor(ans)] = 20.0
    items[0].target = make_target(logits, cfg.temperature, cfg.teacher_top_k)
    res = train(model, items * 2, items, probes, cfg, tok.pad_token_id, torch.device("cpu"))
    assert res.history[-1]["distill"] < res.history[0]["distill"]
    assert res.val_history[-1]["val_loss"] < res.val_history[0]["val_loss"]

    after = gen.generate([answer.build(question)], len(ans), which="adapter", stop=())[0]
    assert after == teacher != before  # the adapter learned the fact's answer without the story
    assert gen.generate([answer.build(question)], 4, which="base", stop=())[0] == before  # adapter off = base

    # only LoRA moved: every base tensor is bit-identical
    now = model.get_base_model().state_dict()
    base_keys = {k.replace(".base_layer", ""): k for k in now if "lora_" not in k}
    assert set(base_keys) == set(snapshot)
    for k, v in snapshot.items():
        assert torch.equal(now[base_keys[k]], v), k
    assert any(n for n, p in model.named_parameters() if p.requires_grad) and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    # no LoRA on embeddings or lm_head
    assert not any("embed_tokens.lora" in n or "lm_head.lora" in n for n, _ in model.named_parameters())
