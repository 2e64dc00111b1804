"""Tool calls through ``hf/``: chat templates with tools, calls read out of generated
text, and an agent episode with a real (tiny, random) transformers model.

The chat templates in tests/data/chat_templates/ were written for these tests in the
style of Qwen2.5's, Llama 3.1's, Mistral v0.3's, Qwen3-Coder's and GLM-4.5's (the real
ones cannot be downloaded here and no copy is installed): the same layout of tools,
calls and answers, other wording. The table tests/data/tool_calls.jsonl holds generated texts, labelled, with
the answer and calls each must give.

How the random model is made to call a tool: a logits processor appended to the real
``model.generate`` call (``steer``) forces the tokens of a scripted reply. Everything
else is the runner's own path: the template renders the conversation and tools, the
prompt is tokenised and batched, generate runs with the runner's chooser and
finisher, the answer is decoded and its calls parsed.
"""

import asyncio
import json
from pathlib import Path

import pytest

from tests.conftest import TEST_EXTRA, TORCH_HINT, require

require("torch", hint=TORCH_HINT)
require("transformers", hint=TEST_EXTRA)

from evals.runner import ConfigError, Request, RunnerError, make_runner
from runners.hf_tiny import SPECIAL, save_tiny
from runners.hf_tools import template_messages
from runners.tool_text import call_id, parse_tool_calls, template_format
from tasks.agent import BASH_TOOL, SUBMIT_TOOL, AgentLimits, run_agent

DATA = Path(__file__).parent / "data"
TEMPLATES = DATA / "chat_templates"
TOOLS = [BASH_TOOL, SUBMIT_TOOL]
TABLE = [json.loads(line) for line in (DATA / "tool_calls.jsonl").read_text().splitlines()]
ADDED = ["<tool_call>", "</tool_call>"]  # Qwen: added tokens that decoding keeps
MARKS = ["<|python_tag|>", "[TOOL_CALLS]"]  # Llama, Mistral: special tokens
WORDS = ['{"name":', '"bash",', '"submit",', '"arguments":', '"parameters":', '{"command":',
         '"ls"}}', '"ls"}}]', '"ls"}},', '{}}', '{}}]', '[{"name":', "I", "will", "look", ".", "hmm", "ok",
         # Qwen3-Coder's and GLM-4.5's calls; a value in one word, as decoding joins words
         # with spaces, which these formats would keep in a string value
         "<function=bash>", "<function=submit>", "<parameter=command>ls</parameter>", "</function>",
         "bash", "submit", "<arg_key>command</arg_key>", "<arg_value>ls</arg_value>"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tools") / "m", ban=SPECIAL,
                     tokens={"words": WORDS, "added": ADDED, "special": MARKS})


def runner(path, template=None, **options):
    if template:
        options["chat_template"] = str(TEMPLATES / f"{template}.jinja")
    return make_runner(f"hf/{path}", **{k: str(v) for k, v in options.items()})


def steer(r, *replies):
    """Each later generate call emits the next reply's tokens, then EOS; returns the
    prompts the template rendered, in order."""
    from transformers import LogitsProcessor, LogitsProcessorList

    model, tok = r.engine.model, r.tokenizer
    queue = [tok.convert_tokens_to_ids(reply.split()) + [tok.eos_token_id] for reply in replies]
    real = model.generate

    class Forced(LogitsProcessor):
        def __init__(self, ids, width):
            self.ids, self.width = ids, width

        def __call__(self, input_ids, scores):
            step = input_ids.shape[1] - self.width
            scores[:] = float("-inf")
            scores[:, self.ids[min(step, len(self.ids) - 1)]] = 0.0
            return scores

    def generate(*, input_ids, logits_processor, **kw):
        forced = Forced(queue.pop(0), input_ids.shape[1])
        return real(input_ids=input_ids, logits_processor=LogitsProcessorList(
            [*logits_processor, forced]), **kw)

    model.generate = generate
    prompts = []
    render = r.tools.render

    def recording(messages, tools, generation_prompt=True):
        text = render(messages, tools, generation_prompt)
        prompts.append(text)
        return text

    r.tools.render = recording
    return prompts


def ask(r, messages, **kw):
    async def go():
        try:
            return await r.generate(Request(messages, tools=TOOLS, tool_choice="auto", **kw))
        finally:
            await r.aclose()
    return asyncio.run(go())


CONVERSATION = [
    {"role": "user", "content": "Fix the bug."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a1b2c3d4e", "type": "function",
         "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]},
    {"role": "tool", "tool_call_id": "a1b2c3d4e", "content": "calc.py"},
]


@pytest.mark.parametrize("template,call,answer,fmt", [
    ("qwen25_style", '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
     "<tool_response>\ncalc.py\n</tool_response>", "hermes"),
    ("llama31_style", '{"name": "bash", "parameters": {"command": "ls"}}<|eot_id|>',
     "<|start_header_id|>ipython<|end_header_id|>\n\ncalc.py", "llama3_json"),
    ("mistral_style", '[TOOL_CALLS][{"name": "bash", "arguments": {"command": "ls"}, '
     '"id": "a1b2c3d4e"}]', '[TOOL_RESULTS]{"call_id": "a1b2c3d4e", "content": "calc.py"}',
     "mistral"),
    ("qwen3_coder_style", "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n"
     "</function>\n</tool_call>", "<tool_response>\ncalc.py\n</tool_response>", "qwen3_coder"),
    ("glm45_style", "<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls</arg_value>\n"
     "</tool_call>", "<|observation|><tool_response>\ncalc.py\n</tool_response>", "glm45"),
])
def test_templates_render_tools_calls_and_answers(model_dir, template, call, answer, fmt):
    r = runner(model_dir, template)
    text = r.tools.render(template_messages(CONVERSATION), TOOLS)
    assert BASH_TOOL["function"]["description"] in text  # the tool definitions
    assert SUBMIT_TOOL["function"]["description"] in text
    assert call in text  # arguments rendered as the JSON object, not a quoted string
    assert answer in text
    assert text.index("Fix the bug.") < text.index(call) < text.index(answer)
    assert r.tools.check(TOOLS) == fmt  # read off the template's rendering of a call


def test_template_messages_is_what_templates_expect():
    out = template_messages(CONVERSATION)
    assert out[1]["tool_calls"][0]["function"]["arguments"] == {"command": "ls"}
    assert out[1]["content"] == "" and out[2]["name"] == "bash"
    assert CONVERSATION[1]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'
    bad = [{"role": "assistant", "content": "x", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{oops"}}]}]
    assert template_messages(bad)[0]["tool_calls"][0]["function"]["arguments"] == "{oops"


@pytest.mark.parametrize("row", TABLE, ids=[f"{r['format']}: {r['label']}" for r in TABLE])
def test_calls_read_out_of_generated_text(row):
    text, calls = parse_tool_calls(row["text"], row["format"], "key", row.get("tools"))
    assert text == row["answer"]
    assert [[c.name, c.arguments] for c in calls] == row["calls"]
    assert [c.id for c in calls] == [call_id("key", i) for i in range(len(calls))]
    assert all(len(c.id) == 9 and c.id.isalnum() for c in calls)


def test_template_source_names_its_format():
    assert template_format((TEMPLATES / "qwen25_style.jinja").read_text()) == "hermes"
    assert template_format((TEMPLATES / "llama31_style.jinja").read_text()) == "llama3_json"
    assert template_format((TEMPLATES / "mistral_style.jinja").read_text()) == "mistral"
    assert template_format((TEMPLATES / "qwen3_coder_style.jinja").read_text()) == "qwen3_coder"
    assert template_format((TEMPLATES / "glm45_style.jinja").read_text()) == "glm45"
    assert template_format("{{ messages }}") is None
    # <tool_call> wrapping something other than JSON is not hermes
    assert template_format("{{ '<tool_call>' }}{{ c.name }}({{ c.arguments }})</tool_call>") is None
    assert template_format("{{- '<tool_call>\\n{\"name\": \"' }}") == "hermes"  # Qwen2.5's spelling


@pytest.mark.parametrize("template", ["qwen3_coder_style", "glm45_style"])
def test_a_call_the_template_renders_is_read_back_as_it_was(model_dir, template):
    """The XML formats write values without JSON around them: what the parser reads out
    of the template's own rendering of a call, typed by the tool's schema, is the call."""
    tool = {"type": "function", "function": {"name": "edit", "description": "Edit.", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}, "line": {"type": "integer"},
                                         "force": {"type": "boolean"}, "opts": {"type": "object"},
                                         "text": {"type": "string"}}}}}
    arguments = {"path": "a.py", "line": 12, "force": True, "opts": {"a": [1, None]},
                 "text": "def f():\n    return `x`\n"}
    said = [{"role": "user", "content": "Edit."},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "a1b2c3d4e", "type": "function",
                 "function": {"name": "edit", "arguments": json.dumps(arguments)}}]}]
    r = runner(model_dir, template)
    rendered = r.tools.render(template_messages(said), [tool], False)
    assert r.tools.check([tool]) == template.removesuffix("_style")
    text, [call] = parse_tool_calls(rendered[rendered.rindex("Edit."):], r.tools.format(), "k",
                                    [tool])
    assert call.name == "edit" and json.loads(call.arguments) == arguments


def test_a_tool_call_tag_around_an_unknown_spelling_is_refused_not_read_as_hermes(model_dir,
                                                                                   tmp_path):
    odd = tmp_path / "odd.jinja"  # <tool_call> like Qwen's, but a call of its own inside
    odd.write_text("{% for t in tools or [] %}TOOL {{ t.function.name }}\n{% endfor %}"
                   "{% for m in messages %}{{ m.role }}: {{ m.content }}"
                   "{% for c in m.tool_calls or [] %}<tool_call>CALL {{ c.function.name }}"
                   "</tool_call>{% endfor %}\n{% endfor %}assistant:")
    with pytest.raises(RunnerError, match="renders a call as '<tool_call>CALL probe.*"
                                          "-M tool_parser=NAME.*glm45"):
        ask(runner(model_dir, chat_template=odd), [{"role": "user", "content": "hi"}])


def test_a_template_without_tools_is_refused_not_run_blind(model_dir):
    r = runner(model_dir)  # the tiny tokenizer's own template ignores tools
    with pytest.raises(RunnerError, match="does not render tools.*-T agent_protocol=text"):
        ask(r, [{"role": "user", "content": "hi"}])


def test_a_call_format_the_template_does_not_show_needs_tool_parser(model_dir, tmp_path):
    odd = tmp_path / "odd.jinja"  # renders the tools, but calls in a spelling of its own
    odd.write_text("{% for t in tools or [] %}TOOL {{ t.function.name }}\n{% endfor %}"
                   "{% for m in messages %}{{ m.role }}: {{ m.content }}"
                   "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }}{% endfor %}\n"
                   "{% endfor %}assistant:")
    with pytest.raises(RunnerError, match="cannot tell.*-M tool_parser=NAME \\(hermes"):
        ask(runner(model_dir, chat_template=odd), [{"role": "user", "content": "hi"}])
    r = runner(model_dir, chat_template=odd, tool_parser="hermes")
    steer(r, '<tool_call> {"name": "bash", "arguments": {"command": "ls"}} </tool_call>')
    [c] = ask(r, [{"role": "user", "content": "hi"}]).completions
    assert [(t.name, t.arguments) for t in c.tool_calls] == [("bash", '{"command": "ls"}')]


def test_options_and_tool_choice(model_dir):
    with pytest.raises(ConfigError, match="tool_parser must be auto or one of hermes"):
        runner(model_dir, tool_parser="json")
    # left at auto, the option leaves the response cache's identity of earlier runs as it was
    assert "tool_parser" not in runner(model_dir).cache_identity
    assert "('tool_parser', 'hermes')" in runner(model_dir, tool_parser="hermes").cache_identity
    with pytest.raises(RunnerError, match="tool_choice=required cannot be enforced"):
        asyncio.run(runner(model_dir, "qwen25_style").generate(Request(
            [{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="required")))
    r = runner(model_dir, "qwen25_style")
    prompts = steer(r, "ok")
    asyncio.run(r.generate(Request([{"role": "user", "content": "hi"}], tools=TOOLS,
                                   tool_choice="none")))
    assert "<tools>" not in prompts[0]  # none: the tools are not offered


@pytest.mark.parametrize("template,reply", [
    ("qwen25_style", 'I will look . <tool_call> {"name": "bash", "arguments": {"command": '
                     '"ls"}} </tool_call> <tool_call> {"name": "submit", "arguments": {}} '
                     '</tool_call>'),
    ("mistral_style", '[TOOL_CALLS] [{"name": "bash", "arguments": {"command": "ls"}}, '
                      '{"name": "submit", "arguments": {}}]'),
])
def test_two_calls_from_a_real_generation(model_dir, template, reply):
    r = runner(model_dir, template)
    steer(r, reply)
    response = ask(r, [{"role": "user", "content": "hi"}], max_tokens=40)
    [c] = response.completions
    assert c.finish_reason == "tool_calls"
    assert [(t.name, t.arguments) for t in c.tool_calls] == [("bash", '{"command": "ls"}'),
                                                             ("submit", "{}")]
    assert c.text == ("I will look." if template == "qwen25_style" else "")
    assert response.usage.completion_tokens == len(reply.split()) + 1  # + EOS


def test_a_call_cut_off_by_max_tokens_is_returned_raw(model_dir):
    r = runner(model_dir, "qwen25_style")
    steer(r, '<tool_call> {"name": "bash", "arguments": {"command": "ls"}} </tool_call>')
    [c] = ask(r, [{"role": "user", "content": "hi"}], max_tokens=5).completions
    assert c.finish_reason == "length"
    [call] = c.tool_calls
    assert call.name == "bash" and call.arguments == '{"name": "bash", "arguments": {"command":'


def test_a_thought_then_a_call(model_dir):
    r = runner(model_dir, "qwen25_style")
    steer(r, '<think> hmm ok </think> <tool_call> {"name": "submit", "arguments": {}} '
             '</tool_call>')
    [c] = ask(r, [{"role": "user", "content": "hi"}], max_tokens=20).completions
    assert c.reasoning == "hmm ok" and c.text == ""
    assert [t.name for t in c.tool_calls] == ["submit"] and c.finish_reason == "tool_calls"


class Shell:
    """A scripted in-memory executor: records the commands, answers from a table."""

    def __init__(self, answers):
        self.answers, self.commands = answers, []

    async def run(self, command, timeout):
        self.commands.append(command)
        return 0, self.answers[command]


EPISODES = {
    "qwen25_style": ['I will look . <tool_call> {"name": "bash", "arguments": {"command": '
                     '"ls"}} </tool_call>',
                     '<tool_call> {"name": "submit", "arguments": {}} </tool_call>'],
    "llama31_style": ['{"name": "bash", "parameters": {"command": "ls"}}',
                      '<|python_tag|> {"name": "submit", "parameters": {}}'],
    "mistral_style": ['[TOOL_CALLS] [{"name": "bash", "arguments": {"command": "ls"}}]',
                      '[TOOL_CALLS] [{"name": "submit", "arguments": {}}]'],
    "qwen3_coder_style": ["I will look . <tool_call> <function=bash> "
                          "<parameter=command>ls</parameter> </function> </tool_call>",
                          "<tool_call> <function=submit> </function> </tool_call>"],
    "glm45_style": ["<tool_call> bash <arg_key>command</arg_key> <arg_value>ls</arg_value> "
                    "</tool_call>", "<tool_call> submit </tool_call>"],
}


@pytest.mark.parametrize("template", sorted(EPISODES))
def test_agent_episode_with_a_real_model(model_dir, template):
    def episode():
        r = runner(model_dir, template)
        prompts = steer(r, *EPISODES[template])
        shell = Shell({"ls": "calc.py\ncheck.py"})

        async def go():
            try:
                return await run_agent(r.generate, [{"role": "user", "content": "Fix it."}],
                                       shell, AgentLimits(max_steps=5), "tools",
                                       Request([], max_tokens=30, temperature=0))
            finally:
                await r.aclose()
        return asyncio.run(go()), shell, prompts

    trajectory, shell, prompts = episode()
    assert trajectory.stop == "submitted", trajectory.to_json()
    assert [s.action for s in trajectory.steps] == ["ls", "submit"]
    assert shell.commands == ["ls"]
    assert trajectory.steps[0].observation == "(exit code 0)\ncalc.py\ncheck.py"
    # the second turn's prompt: the first call and its answer, as the template renders them
    first, second = prompts[-2], prompts[-1]
    assert second.startswith(first[:first.index("Fix it.")])
    assert "check.py" in second and "check.py" not in first
    assert {"qwen25_style": '"arguments": {"command": "ls"}',
            "llama31_style": '"parameters": {"command": "ls"}',
            "mistral_style": '"arguments": {"command": "ls"}, "id": "',
            "qwen3_coder_style": "<function=bash>\n<parameter=command>\nls\n</parameter>",
            "glm45_style": "<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls"}[template] \
        in second
    if template == "qwen25_style":
        assert "<|im_start|>assistant\nI will look.\n<tool_call>" in second
    assert all(s.prompt_tokens > 0 and s.completion_tokens > 0 for s in trajectory.steps)
    again, _, prompts_again = episode()  # call ids come from the generation: the same
    assert prompts_again[-1] == second
    assert [(s.action, s.observation) for s in again.steps] == \
        [(s.action, s.observation) for s in trajectory.steps]


@pytest.mark.parametrize("template,cut", [
    ("qwen3_coder_style", "<tool_call> <function=bash> <parameter=command>ls</parameter>"),
    ("glm45_style", "<tool_call> bash <arg_key>command</arg_key>")])
def test_a_malformed_call_in_an_xml_format_is_shown_back_without_arguments(model_dir, template,
                                                                          cut):
    """A call cut off mid-way comes back raw; its template cannot render text as
    arguments (it walks their items), so the next turn shows the call with none, and
    the episode goes on to the tool's complaint and the next call."""
    r = runner(model_dir, template)
    prompts = steer(r, cut, EPISODES[template][1])

    async def go():
        try:
            return await run_agent(r.generate, [{"role": "user", "content": "Fix it."}],
                                   Shell({}), AgentLimits(max_steps=5), "tools",
                                   Request([], max_tokens=30, temperature=0))
        finally:
            await r.aclose()
    trajectory = asyncio.run(go())
    assert trajectory.stop == "submitted", trajectory.to_json()
    assert trajectory.steps[0].observation.startswith("malformed arguments for 'bash'")
    shown = {"qwen3_coder_style": "<function=bash>\n</function>",
             "glm45_style": "<tool_call>bash\n</tool_call>"}[template]
    assert shown in prompts[-1]
