"""Text encoders: the built-in byte-level encoder and local Hugging Face CLIP / T5 folders combined as in SD3."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPTextConfig,
    CLIPTextModelWithProjection,
    PreTrainedTokenizerFast,
    T5Config,
    T5EncoderModel,
)

from cvd_sim.models.dit import CVDStormDiT
from cvd_sim.models.text_encoder import ByteTextEncoder, HFTextEncoder, byte_tokenize, load_text_encoder

CAPTIONS = ["a car drives on a sunny road", "rainy night in the city, trucks ahead", "pedestrians cross"]


def test_byte_tokenize():
    ids, mask = byte_tokenize(["ab", "é" * 10], max_length=8)
    assert ids[0].tolist() == [1, 97 + 3, 98 + 3, 2, 0, 0, 0, 0]
    assert mask[0].tolist() == [True] * 4 + [False] * 4
    # Truncated to max_length - 2 bytes between BOS and EOS ("é" is 2 UTF-8 bytes: 0xC3 0xA9).
    assert ids[1].tolist() == [1, *([0xC3 + 3, 0xA9 + 3] * 3), 2]


def test_byte_encoder_ignores_padding_and_roundtrips(tmp_path):
    torch.manual_seed(0)
    encoder = ByteTextEncoder(max_length=32, width=32, num_layers=2, num_heads=4, pooled_dim=24).eval()
    hidden, pooled = encoder.encode(CAPTIONS)
    assert hidden.shape == (3, 32, 32) and pooled.shape == (3, 24)
    # A longer padded sequence gives the same valid tokens and pooled vector (padding is masked out).
    ids, mask = byte_tokenize(CAPTIONS[:1], 32)
    with torch.no_grad():
        long_hidden, long_pooled = encoder(ids, mask)
        short_hidden, short_pooled = encoder(ids[:, :31], mask[:, :31])
    torch.testing.assert_close(short_pooled, long_pooled, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(short_hidden[mask[:, :31]], long_hidden[mask], rtol=1e-5, atol=1e-5)
    encoder.save_pretrained(tmp_path / "te")
    loaded = load_text_encoder(tmp_path / "te")
    assert isinstance(loaded, ByteTextEncoder)
    torch.testing.assert_close(loaded.encode(CAPTIONS)[1], pooled, rtol=0, atol=0)


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CAPTIONS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """A tiny random CLIP text model with projection and a tiny T5 encoder, each saved with its tokenizer."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_text")
    clip = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=300,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=24,
            max_position_embeddings=32,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        )
    ).eval()
    t5 = T5EncoderModel(
        T5Config(vocab_size=300, d_model=48, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    ).eval()
    for name, model in (("clip", clip), ("t5", t5)):
        model.save_pretrained(root / name)
        _tokenizer().save_pretrained(root / name)
    return root, clip, t5


def test_clip_folder_pooled_is_the_clip_projection(hf_folders):
    root, clip, _ = hf_folders
    encoder = load_text_encoder(root / "clip")
    assert isinstance(encoder, HFTextEncoder)
    encoder.max_length = 16
    hidden, pooled = encoder.encode(CAPTIONS)
    assert hidden.shape == (3, 16, 32) and pooled.shape == (3, 24)
    tokens = _tokenizer()(CAPTIONS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = clip(tokens.input_ids, output_hidden_states=True)
    torch.testing.assert_close(pooled, out.text_embeds)
    torch.testing.assert_close(hidden, out.hidden_states[-2])


def test_sd3_style_combination_and_dit(tmp_path, hf_folders):
    root, _, t5 = hf_folders
    encoder = HFTextEncoder([root / "clip", root / "t5"], max_length=16)
    assert encoder.hidden_size == 48 and encoder.pooled_size == 24
    hidden, pooled = encoder.encode(CAPTIONS)
    assert hidden.shape == (3, 32, 48) and pooled.shape == (3, 24)
    assert (hidden[:, :16, 32:] == 0).all()  # CLIP tokens zero-padded to the T5 width
    tokens = _tokenizer()(CAPTIONS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected_t5 = t5(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    torch.testing.assert_close(hidden[:, 16:], expected_t5)
    # The DiT takes these dimensions directly.
    dit = CVDStormDiT.from_preset(
        "tiny",
        joint_attention_dim=encoder.hidden_size,
        pooled_projection_dim=encoder.pooled_size,
        num_layers=1,
        layout_blocks=1,
    ).eval()
    with torch.no_grad():
        out = dit(torch.randn(3, 1, 1, 16, 4, 4), torch.zeros(3, 1, 1), hidden, pooled).sample
    assert out.shape == (3, 1, 1, 16, 4, 4)
    # save_pretrained + load_text_encoder roundtrip.
    encoder.save_pretrained(tmp_path / "te")
    loaded = load_text_encoder(tmp_path / "te")
    torch.testing.assert_close(loaded.encode(CAPTIONS)[0], hidden)


def test_missing_text_encoder_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no text encoder"):
        load_text_encoder(tmp_path)
