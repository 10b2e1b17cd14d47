"""A small deterministic tokenizer that cuts text into realistic token-sized pieces."""

import re

# Real BPE vocabularies keep a word's leading space with the word and give punctuation its own
# token; digits come in short groups. Every character falls into exactly one alternative, so the
# pieces always join back to the original text.
_PIECE = re.compile(
    r"""
      '(?:s|t|re|ve|m|ll|d)\b   # an English contraction's ending ("'ll", "'t") is one piece
    | \ ?[^\W\d_]+      # a word with its leading space
    | \ ?\d{1,3}        # digits, at most three to a piece
    | \ ?[^\w\s]        # one punctuation mark, with its leading space if it has one
    | \n+               # a run of newlines
    | .                 # anything else (an underscore, a lone space or tab), one at a time
    """,
    re.VERBOSE | re.DOTALL,
)

# Long words are split so a stream shows word pieces, as real tokenizers do with rare words:
# a common suffix comes off first, otherwise the word is halved.
_LONGEST_PIECE = 8
_SUFFIXES = ("ation", "ment", "ness", "ence", "ance", "able", "ing", "ial", "ally", "ed", "ly")

# JSON arguments of tool calls stream in fragments that glue punctuation runs together
# (`{"`, `":`, `"}`), as in recorded tool-call streams.
_JSON_FRAGMENT = re.compile(r"""\s*[^\W\d_]+|\s*\d+|\s*[^\w\s]+|\s+|.""", re.DOTALL)

# A fixed overhead per message and per request, like the chat formats' role and framing tokens.
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REQUEST = 3


def split_pieces(text: str) -> list[str]:
    """Cut text into token-sized pieces; `"".join(split_pieces(t)) == t` always holds."""
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        pieces.extend(_split_long(match.group()))
    return pieces


def _split_long(piece: str) -> list[str]:
    if len(piece) <= _LONGEST_PIECE:
        return [piece]
    cut = (len(piece) + 1) // 2
    for suffix in _SUFFIXES:
        if piece.endswith(suffix) and len(piece) - len(suffix) >= 4:
            cut = len(piece) - len(suffix)
            break
    return _split_long(piece[:cut]) + _split_long(piece[cut:])


def split_json_fragments(text: str) -> list[str]:
    """Cut a JSON document into the argument fragments a tool-call stream carries."""
    return [match.group() for match in _JSON_FRAGMENT.finditer(text)]


def count_input_tokens(message_texts: list[str]) -> int:
    """Input token count of a request: the pieces of every message plus a fixed overhead."""
    return TOKENS_PER_REQUEST + sum(
        TOKENS_PER_MESSAGE + len(split_pieces(text)) for text in message_texts
    )
