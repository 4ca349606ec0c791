"""The prompt layout of METHOD.md and loc3r's special tokens: plain strings, no tokenizer library.

Sequence layout (LLaVA style, placeholders replaced by embeddings inside the model):
    [<frame> <image> x P] x F <situation> TEXT <Pos> <Ori> <question> TEXT <answer> ANSWER <eos>
(no spaces around the special tokens: they would each cost a token). The torch-free runtime
builds its prompts from here too.
"""

from __future__ import annotations

PAD, EOS = "<pad>", "<eos>"
IMAGE, FRAME = "<image>", "<frame>"
POS, ORI = "<Pos>", "<Ori>"
SITUATION, QUESTION, ANSWER = "<situation>", "<question>", "<answer>"
SPECIAL_TOKENS = (PAD, EOS, IMAGE, FRAME, POS, ORI, SITUATION, QUESTION, ANSWER)


def prompt_text(situation: str, question: str) -> str:
    """Text after the video tokens, up to where the answer starts."""
    return f"{SITUATION}{situation.strip()}{POS}{ORI}{QUESTION}{question.strip()}{ANSWER}"


def answer_text(answer: str) -> str:
    return f"{answer.strip()}{EOS}"
