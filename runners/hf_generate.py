"""The torch side of ``hf/``: one batched ``model.generate`` per group of requests.

Imported only when an ``hf/`` model is built: it imports torch and transformers.

Sampling is chosen here, not by transformers. ``RowChooser`` is a logits processor
that picks each row's next token (greedy, or sampled with that row's temperature and
its own ``torch.Generator``) and hands generate a one-hot distribution, so generate's
own sampling step can only take that token. Why: transformers samples a whole batch
from one global RNG, so a seeded request's tokens would depend on which other
requests shared its batch; with a generator per row, a seed reproduces the same
completions whatever the batching. Owning the choice also lets it replace a too-early
end of thinking with "Wait" (s1's extension) inside the same generate call.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (GenerationConfig, LogitsProcessor, LogitsProcessorList,
                          StoppingCriteria, StoppingCriteriaList)

from evals.runner import Completion, Request, Usage
from runners.hf_think import ThinkConfig, split_generation
from runners.tool_text import parse_tool_calls


@dataclass
class Job:
    """One request, its rendered prompt as token ids, and its slot in a batch."""

    request: Request
    prompt_ids: list[int]
    opened: bool  # the prompt leaves a thought open
    max_tokens: int  # request.max_tokens or the runner default, capped by the context
    controlled: bool  # two-phase budget forcing / wait extensions apply
    tool_format: str | None = None  # read tool calls of this format out of the answer
    drop_ids: frozenset[int] = frozenset()  # with tool_format: special tokens not decoded


@dataclass
class Row:
    """One sequence (sample ``i`` of a request); lives across both phases."""

    temperature: float
    generator: torch.Generator | None
    stop: list[str]
    waits_left: int = 0
    forced: deque[int] = field(default_factory=deque)  # tokens to emit before choosing again


@dataclass
class Sampling:
    """Runner-wide sampling defaults (the model's generation_config unless -M overrides)."""

    temperature: float  # used when a request leaves temperature None; 0 = greedy
    top_p: float
    top_k: int


class RowChooser(LogitsProcessor):
    """Chooses every row's next token; see the module docstring for why."""

    def __init__(self, rows: list[Row], sampling: Sampling, banned: list[int],
                 suppress_id: int | None, wait_ids: tuple[int, ...], greedy_generate: bool):
        self.rows, self.sampling, self.banned = rows, sampling, banned
        self.suppress_id, self.wait_ids = suppress_id, wait_ids
        # generate itself takes the argmax: an all-greedy step may pass the scores through.
        self.greedy_generate = greedy_generate
        self._any_sampled = False
        self.done: list[bool] | None = None  # shared with RowFinisher: skip finished rows

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()
        if self.banned:  # ignore_eos: the benchmark's fixed-length generations
            scores[:, self.banned] = float("-inf")
        tokens = self._choose(scores)
        done = self.done or [False] * len(self.rows)
        changed = False
        if self.suppress_id is not None:
            for r in (tokens == self.suppress_id).nonzero().flatten().tolist():
                row = self.rows[r]
                if row.waits_left > 0 and not done[r] and not row.forced:
                    row.waits_left -= 1
                    row.forced.extend(self.wait_ids)
        for r, row in enumerate(self.rows):
            if row.forced and not done[r]:
                tokens[r] = row.forced.popleft()
                changed = True
        if self.greedy_generate and not changed and not self._any_sampled:
            return scores  # the benchmark's hot path: no (rows x vocab) one-hot to build
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tokens.unsqueeze(1), 0.0)
        return out

    def _choose(self, scores: torch.Tensor) -> torch.Tensor:
        tokens = scores.argmax(dim=-1)
        sampled = [r for r, row in enumerate(self.rows) if row.temperature > 0 and not row.forced]
        self._any_sampled = bool(sampled)
        if not sampled:
            return tokens
        index = torch.tensor(sampled, device=scores.device)
        temps = torch.tensor([self.rows[r].temperature for r in sampled], device=scores.device)
        logits = _filter(scores[index] / temps.unsqueeze(1), self.sampling)
        probs = torch.softmax(logits, dim=-1)
        seeded = [i for i, r in enumerate(sampled) if self.rows[r].generator is not None]
        picks = torch.multinomial(probs, 1).squeeze(1) if len(seeded) < len(sampled) \
            else torch.empty(len(sampled), dtype=torch.long, device=scores.device)
        for i in seeded:  # one small draw per seeded row: its own reproducible stream
            picks[i] = torch.multinomial(probs[i], 1, generator=self.rows[sampled[i]].generator)[0]
        tokens[index] = picks
        return tokens


def _filter(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """top-k then top-p (nucleus), as transformers and vLLM apply them."""
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = torch.topk(logits, sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= sampling.top_p  # the top token always stays
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


class RowFinisher(StoppingCriteria):
    """Ends each row on its own terms and records why and after how many tokens.

    transformers pads a finished row until the whole batch ends; the recorded
    ``lengths`` are what is real. Reasons: "stop" (EOS or a stop string), "length"
    (the row's own cap), "think_end" (phase 1 saw the end of thinking).
    """

    def __init__(self, rows: list[Row], prompt_len: int, caps: list[int], eos: set[int],
                 tokenizer: Any, think: ThinkConfig | None, watch_think_end: bool,
                 in_thought: list[bool], abort: Any):
        self.rows, self.prompt_len, self.caps, self.eos = rows, prompt_len, caps, eos
        self.tokenizer, self.think, self.watch = tokenizer, think, watch_think_end
        self.in_thought = in_thought  # stop strings apply to the answer, not the thought
        self.answer_from = [0] * len(rows)
        self.lengths: list[int | None] = [None] * len(rows)
        self.reasons = ["length"] * len(rows)
        self.done = [False] * len(rows)
        self.abort = abort  # runner closing: end the batch at the next step
        self.window = max((len(s) for row in rows for s in row.stop), default=0) + 4

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        last = input_ids[:, -1].tolist()
        think = self.think
        for r, token in enumerate(last):
            if self.done[r]:
                continue
            reason = None
            if token in self.eos:
                reason = "stop"
            elif think is not None and len(think.end_ids) == 1 and token == think.end_ids[0] \
                    and self.in_thought[r]:
                self.in_thought[r] = False
                self.answer_from[r] = step
                reason = "think_end" if self.watch else None
            elif think is not None and len(think.start_ids) == 1 and token == think.start_ids[0]:
                self.in_thought[r] = True
            elif self.watch and think is not None and len(think.end_ids) > 1:
                tail = input_ids[r, -len(think.end_ids):].tolist()
                reason = "think_end" if tuple(tail) == think.end_ids else None
            if reason is None and self.rows[r].stop and not self.in_thought[r]:
                reason = self._stop_string(r, input_ids[r], step)
            if reason is None and step >= self.caps[r]:
                reason = "length"
            if reason is not None:
                self.done[r], self.lengths[r], self.reasons[r] = True, step, reason
        if self.abort():
            return torch.ones(len(last), dtype=torch.bool, device=input_ids.device)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    def _stop_string(self, r: int, ids: torch.Tensor, step: int) -> str | None:
        # A stop string that just appeared ends in the last few tokens: decode only a tail.
        begin = self.prompt_len + max(self.answer_from[r], step - self.window)
        tail = self.tokenizer.decode(ids[begin:].tolist(), skip_special_tokens=True)
        return "stop" if any(s in tail for s in self.rows[r].stop) else None


@dataclass
class Generated:
    """One row's output of one generate call: the real tokens and why it ended."""

    ids: list[int]
    reason: str


class Engine:
    """Runs one batch (requests of one compatibility group) on the worker thread."""

    def __init__(self, model: Any, tokenizer: Any, think: ThinkConfig | None,
                 sampling: Sampling, eos: set[int], pad_id: int, ignore_eos: bool):
        self.model, self.tokenizer, self.think, self.sampling = model, tokenizer, think, sampling
        self.eos = set() if ignore_eos else set(eos)
        self.banned = sorted(eos) if ignore_eos else []
        self.pad_id = pad_id
        self.device = model.device
        self.aborting = False  # set by aclose(): ends a running batch at its next step

    def run(self, jobs: list[Job]) -> list[tuple[list[Completion], Usage]]:
        with torch.inference_mode():
            rows = self._rows(jobs)
            if jobs[0].controlled:
                return self._two_phase(jobs, rows)
            return self._one_phase(jobs, rows)

    def _rows(self, jobs: list[Job]) -> list[Row]:
        rows = []
        waits = self.think.wait_extensions if self.think else 0
        for job in jobs:
            req = job.request
            temp = self.sampling.temperature if req.temperature is None else req.temperature
            for i in range(req.n):
                gen = None
                if req.seed is not None and temp > 0:  # generation g draws from seed + g,
                    gen = torch.Generator(device=self.device)  # alone, batched or resumed
                    gen.manual_seed(req.seed_for(i))
                rows.append(Row(temp, gen, list(req.stop or []),
                                waits if job.controlled else 0))
        return rows

    def _one_phase(self, jobs: list[Job], rows: list[Row]) -> list[tuple[list[Completion], Usage]]:
        n = jobs[0].request.n
        caps = [job.max_tokens for job in jobs for _ in range(n)]
        opened = [job.opened for job in jobs for _ in range(n)]
        gens = self._call([job.prompt_ids for job in jobs], n, rows, caps, False, opened)
        results = []
        for j, job in enumerate(jobs):
            completions, usage = [], Usage(prompt_tokens=len(job.prompt_ids))
            for r in range(j * n, (j + 1) * n):
                split = split_generation(gens[r].ids, self.think, job.opened)
                reasoning = None if split.thought is None else self._decode(split.thought)
                completions.append(self._completion(split.answer, reasoning, gens[r].reason,
                                                    rows[r].stop, job))
                usage.completion_tokens += len(gens[r].ids)
                usage.reasoning_tokens += len(split.thought or ())
            results.append((completions, usage))
        return results

    def _two_phase(self, jobs: list[Job], rows: list[Row]) -> list[tuple[list[Completion], Usage]]:
        """Budget forcing. Phase 1 thinks up to B tokens and stops at the end of thinking;
        phase 2 appends the end-of-thinking insert where the model did not close the
        thought itself, then generates the answer with what is left of max_tokens."""
        think = self.think
        assert think is not None
        n, budget = jobs[0].request.n, jobs[0].request.thinking_budget
        caps = [job.max_tokens if budget is None else min(budget, job.max_tokens)
                for job in jobs for _ in range(n)]
        if max(caps) > 0:
            first = self._call([job.prompt_ids for job in jobs], n, rows, caps, True,
                               [True] * len(rows))
        else:  # budget 0: no thought at all, straight to the insert and the answer
            first = [Generated([], "length") for _ in rows]
        thoughts, closings, prompts, caps2, second_rows = [], [], [], [], []
        for r, gen in enumerate(first):
            job, ids = jobs[r // n], gen.ids
            if gen.reason == "think_end":  # the model closed it: keep its own delimiter
                thought, closing = ids[:-len(think.end_ids)], list(think.end_ids)
            else:  # budget spent (or EOS inside the thought): force the answer
                thought = ids[:-1] if gen.reason == "stop" and ids and ids[-1] in self.eos else ids
                closing = list(think.end_insert_ids)
            remaining = job.max_tokens - len(thought) - len(closing)
            if remaining <= 0 and gen.reason != "think_end":
                closing = []  # max_tokens ran out inside the thought: nothing to force
            thoughts.append(thought)
            closings.append(closing)
            if remaining > 0:
                rows[r].forced.clear()  # a "Wait" cut short by the budget stays cut
                prompts.append(job.prompt_ids + thought + closing)
                caps2.append(remaining)
                second_rows.append(r)
        answers = {r: Generated([], "length") for r in range(len(rows))}
        if prompts:
            out = self._call(prompts, 1, [rows[r] for r in second_rows], caps2, False,
                             [False] * len(prompts))
            answers.update(zip(second_rows, out))
        results = []
        for j, job in enumerate(jobs):
            completions, usage = [], Usage(prompt_tokens=len(job.prompt_ids))
            for r in range(j * n, (j + 1) * n):
                answer = answers[r]
                completions.append(self._completion(answer.ids, self._decode(thoughts[r]),
                                                    answer.reason, rows[r].stop, job))
                usage.completion_tokens += len(thoughts[r]) + len(closings[r]) + len(answer.ids)
                usage.reasoning_tokens += len(thoughts[r])
            results.append((completions, usage))
        return results

    def _call(self, prompts: list[list[int]], n: int, rows: list[Row], caps: list[int],
              watch_think_end: bool, in_thought: list[bool]) -> list[Generated]:
        """One left-padded ``model.generate``; ``n`` samples per prompt."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt):] = 1
        think = self.think
        finisher = RowFinisher(rows, width, caps, self.eos, self.tokenizer, think,
                               watch_think_end, list(in_thought), lambda: self.aborting)
        suppress = think.end_ids[0] if think and watch_think_end and any(
            row.waits_left for row in rows) else None
        # generate refuses num_return_sequences > 1 without sampling; with one sequence per
        # prompt its greedy argmax of RowChooser's one-hot is the same choice, and cheaper.
        sample = n > 1
        chooser = RowChooser(rows, self.sampling, self.banned, suppress,
                             think.wait_ids if think else (), greedy_generate=not sample)
        chooser.done = finisher.done
        # Neutral warpers when sampling: RowChooser's one-hot output already is the choice.
        warpers = {"temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample else {}
        config = GenerationConfig(
            max_new_tokens=max(caps), do_sample=sample, num_return_sequences=n,
            repetition_penalty=1.0, pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos) or None, **warpers)
        out = self.model.generate(input_ids=ids.to(self.device),
                                  attention_mask=mask.to(self.device), generation_config=config,
                                  logits_processor=LogitsProcessorList([chooser]),
                                  stopping_criteria=StoppingCriteriaList([finisher]))
        new = out[:, width:].tolist()
        return [Generated(new[r][:finisher.lengths[r] if finisher.lengths[r] is not None
                                 else len(new[r])], finisher.reasons[r])
                for r in range(len(new))]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _completion(self, answer: list[int], reasoning: str | None, reason: str,
                    stop: list[str], job: Job) -> Completion:
        if job.tool_format is None:
            text = self._decode(answer)
        else:  # the format's marker tokens stay: they are where the calls are
            text = self.tokenizer.decode([i for i in answer if i not in job.drop_ids],
                                         skip_special_tokens=False).strip()
        finish = "stop" if reason in ("stop", "think_end") else "length"
        cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
        if cuts:  # OpenAI semantics: the stop string itself is not returned
            text, finish = text[:min(cuts)].rstrip(), "stop"
        if job.tool_format is None:
            return Completion(text, reasoning, finish)
        # ids from the prompt and the generation: a regenerated turn gets the same ones
        key = hashlib.blake2b(array("q", job.prompt_ids + answer).tobytes(),
                              digest_size=16).hexdigest()
        text, calls = parse_tool_calls(text, job.tool_format, key, job.request.tools)
        if calls and finish == "stop":  # a call cut off by max_tokens stays "length"
            finish = "tool_calls"
        return Completion(text, reasoning, finish, calls or None)

    def max_rows(self, tokens_per_row: int, limit: int = 256) -> int:
        """Rows whose KV cache fits in free GPU memory (80% of it, for activations)."""
        if self.device.type != "cuda":
            return 16  # CPU: batching still amortises the weight reads; memory is not the limit
        config = self.model.config.get_text_config()
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        elem = next(self.model.parameters()).element_size()
        per_row = (2 * config.num_hidden_layers * kv_heads * head_dim * elem * tokens_per_row
                   + 4 * 4 * config.vocab_size)  # + the float32 logits RowChooser works on
        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        return max(1, min(limit, int(0.8 * free // per_row)))


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError is 2.5+


def release_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
