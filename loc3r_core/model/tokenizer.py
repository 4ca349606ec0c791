"""The tokenizer trained on our text with the `tokenizers` library (prompt layout: model.prompt)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from loc3r_core.model.prompt import (  # noqa: F401 (re-exported: the tokenizer's users read them here)
    ANSWER,
    EOS,
    FRAME,
    IMAGE,
    ORI,
    PAD,
    POS,
    QUESTION,
    SITUATION,
    SPECIAL_TOKENS,
    answer_text,
    prompt_text,
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE: any UTF-8 text encodes (no unknown token), and decoding is exact."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap(tokenizer)


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS,
                                   additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (PAD, EOS)])


def add_special_tokens(tokenizer: PreTrainedTokenizerFast) -> int:
    """Give a pretrained LM's tokenizer our special tokens; returns how many were new."""
    extra = [t for t in SPECIAL_TOKENS if t not in (PAD, EOS)]
    added = tokenizer.add_special_tokens({"additional_special_tokens": extra})
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    if tokenizer.eos_token is None:
        added += tokenizer.add_special_tokens({"eos_token": EOS})
    return added


def special_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("image_token_id", IMAGE), ("frame_token_id", FRAME), ("pos_token_id", POS), ("ori_token_id", ORI),
            ("answer_token_id", ANSWER))}
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids.values():
        raise ValueError("the tokenizer lacks loc3r's special tokens; call add_special_tokens first")
    return ids


def label_token_ids(tokenizer: PreTrainedTokenizerFast, labels: Iterable[str]) -> list[int]:
    """The first token of each label as an answer spells it (straight after <answer>, no space):
    the token an answer naming that object starts with (Loc3rConfig.answer_copy_labels)."""
    return [tokenizer.encode(label, add_special_tokens=False)[0] for label in labels]
