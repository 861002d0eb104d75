"""Write a tiny random-weight Llama GGUF for tests: a real model file that llama.cpp loads and streams from.

No pretrained model can be downloaded here, so the OpenAI-compatible adapter is tested against llama.cpp
serving this file. It has 64 hidden units, 2 layers, a small SentencePiece-style vocabulary (control tokens,
byte fallback, single characters and common English words) and a ChatML chat template.

The weights are random, so replies are random words; two choices keep them usable as a protocol fixture:
- every token embedding carries the same large value in dimension 0, which dominates the normalized hidden
  state, and the output rows of special, byte and single-character tokens are strongly negative in that
  dimension: the model never emits end-of-sequence, control or byte tokens and so always runs to max_tokens;
- the other output weights are small, so the next-word distribution is nearly flat: no repetition loops.

Usage: `python scripts/build_test_gguf.py [PATH]` (default: the test cache), or from tests
`from scripts.build_test_gguf import cached_test_gguf`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1  # bump when the file's content changes, so cached copies are rebuilt
N_EMBD = 64
N_LAYERS = 2
N_HEADS = 4
N_FF = 128
CONTEXT = 512
SEED = 1234

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_WORD_LIST = """
the a an and or but so if then when where what who how why yes no not very more most less some any
all each every many much few one two three four five six seven eight nine ten first last next new
old good great small large long short high low little big right left near far here there now today
tomorrow yesterday morning evening night day week year time place home house room door window table
chair book page word story song music sound voice light color red blue green yellow white black warm
cold water tea coffee bread apple orange rice soup cake friend family mother father child people
person name city street park garden tree flower sun moon star sky rain snow wind river sea mountain
road car train bus walk run talk speak listen look see watch read write think know learn remember
like love want need help give take make go come stay sit stand open close start stop play work rest
sleep happy sad calm kind gentle quiet bright soft clear simple easy hard nice fine sure really
maybe
"""
WORDS = _WORD_LIST.split()


def cache_dir() -> Path:
    """Where test models are kept between runs: $DIGIHUMAN_TEST_CACHE or ~/.cache/digihuman-tests."""
    env = os.environ.get("DIGIHUMAN_TEST_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "digihuman-tests"


def _vocabulary() -> tuple[list[str], list[float], list[int], list[bool]]:
    """Tokens, scores, token types, and whether the model may emit each one."""
    import gguf

    kinds = gguf.TokenType
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    speakable: list[bool] = []

    def add(text: str, score: float, kind: int, emit: bool) -> None:
        tokens.append(text)
        scores.append(score)
        types.append(int(kind))
        speakable.append(emit)

    add("<unk>", 0.0, kinds.UNKNOWN, False)
    add("<s>", 0.0, kinds.CONTROL, False)
    add("</s>", 0.0, kinds.CONTROL, False)
    add("<|im_start|>", 0.0, kinds.CONTROL, False)
    add("<|im_end|>", 0.0, kinds.CONTROL, False)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, kinds.BYTE, False)
    add("\u2581", -1000.0, kinds.NORMAL, False)
    for code in range(33, 127):
        add(chr(code), -1000.0 - code, kinds.NORMAL, False)
    for rank, word in enumerate(dict.fromkeys(WORDS)):
        add("\u2581" + word, -float(rank), kinds.NORMAL, True)
    for text in (".", ",", "!", "?"):
        # Punctuation as its own emitted token, so replies have sentence ends.
        index = tokens.index(text)
        speakable[index] = True
    return tokens, scores, types, speakable


def build_test_gguf(path: Path) -> Path:
    """Write the model to `path` (atomically) and return it."""
    try:
        import gguf
    except ImportError:
        raise SystemExit("the `gguf` package is needed: .venv/bin/pip install gguf") from None

    tokens, scores, types, speakable = _vocabulary()
    rng = np.random.default_rng(SEED)
    n_vocab = len(tokens)

    def weight(rows: int, cols: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * std).astype(np.float32)

    embeddings = weight(n_vocab, N_EMBD)
    embeddings[:, 0] = 1.0  # the shared direction that lets the output layer rule tokens out (see above)
    output = weight(n_vocab, N_EMBD, std=0.3)
    output[:, 0] = np.where(np.array(speakable), 0.0, -10.0)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = gguf.GGUFWriter(str(partial), arch="llama")
    writer.add_name("digihuman-test-tiny")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEADS)
    writer.add_head_count_kv(N_HEADS)
    writer.add_rope_dimension_count(N_EMBD // N_HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(N_LAYERS):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", weight(N_EMBD, N_EMBD))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return path


def cached_test_gguf() -> Path:
    """The test model, built on first use and then reused."""
    path = cache_dir() / f"tiny-llama-v{FORMAT_VERSION}.gguf"
    if not path.exists():
        build_test_gguf(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="where to write it (default: the test cache)")
    args = parser.parse_args(argv)
    path = build_test_gguf(args.path) if args.path else cached_test_gguf()
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
