"""Text encoders against diffusers' SanaWMPipeline.encode_prompt, with no network.

The Gemma-2 stand-in is a real `Gemma2ForCausalLM` with a tiny random config (2 layers, hidden 32) and a
real tokenizer built from scratch: a `tokenizers` BPE model trained in the test on the system prompt and
a few sentences (whitespace pre-tokenizer, <bos> added by a template post-processor like Gemma's),
wrapped as a transformers `PreTrainedTokenizerFast`. Both are saved to a temp folder and reloaded the way
a real google/gemma-2-2b-it download would be.
"""

import json

import pytest
import torch
from diffusers.pipelines.sana_wm.pipeline_sana_wm import DEFAULT_CHI_PROMPT, SanaWMPipeline
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, Gemma2Config, Gemma2ForCausalLM, PreTrainedTokenizerFast

from sanawm.text import SANA_WM_SYSTEM_PROMPT, Gemma2TextEncoder, NullTextEncoder, TextEncoder

SENTENCES = [
    "A car driving across a vast desert plain at golden hour.",
    "A robot walks through a narrow corridor with blue lights.",
    "The camera flies over a green forest and a river.",
]
MAX_LENGTH = 24


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok.train_from_iterator(
        DEFAULT_CHI_PROMPT + SENTENCES, trainers.BpeTrainer(vocab_size=400, special_tokens=specials)
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build_gemma(tokenizer, hidden_size: int = 32) -> Gemma2ForCausalLM:
    """A tiny random Gemma-2 (2 layers) for `tokenizer`."""
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Gemma2ForCausalLM(config).eval()


@pytest.fixture(scope="module")
def gemma_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gemma2")
    tokenizer = build_tokenizer()
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    build_gemma(tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline(gemma_folder):
    """diffusers' SANA-WM pipeline holding only the tokenizer and the causal-LM text encoder."""
    tokenizer = AutoTokenizer.from_pretrained(gemma_folder)
    model = Gemma2ForCausalLM.from_pretrained(gemma_folder).eval()
    return SanaWMPipeline(tokenizer=tokenizer, text_encoder=model, vae=None, transformer=None, scheduler=None)


def _reference(pipeline, prompt, negative="", chi_prompt=DEFAULT_CHI_PROMPT):
    with torch.no_grad():
        cond, cond_mask, neg, neg_mask = pipeline.encode_prompt(
            prompt,
            negative,
            device=torch.device("cpu"),
            max_sequence_length=MAX_LENGTH,
            chi_prompt=chi_prompt,
        )
    return cond[:, 0], cond_mask.bool(), neg[:, 0], neg_mask.bool()


def test_system_prompt_is_the_pipelines():
    assert list(SANA_WM_SYSTEM_PROMPT) == DEFAULT_CHI_PROMPT


def test_gemma2_matches_the_pipeline(gemma_folder, pipeline):
    encoder = Gemma2TextEncoder.from_pretrained(gemma_folder, max_length=MAX_LENGTH)
    assert isinstance(encoder, TextEncoder) and encoder.dim == 32
    assert sum(p.numel() for p in encoder.model.parameters()) < 5_000_000
    long_prompt = " ".join(SENTENCES * 3)  # longer than MAX_LENGTH tokens: truncated
    prompts = [SENTENCES[0], "", long_prompt, "zebra quokka"]  # the last one is mostly <unk>
    embeddings, mask = encoder.encode(prompts)
    assert (
        embeddings.shape == (4, MAX_LENGTH, 32) and mask.shape == (4, MAX_LENGTH) and mask.dtype == torch.bool
    )
    negatives, negative_mask = encoder.encode_negative(prompts)
    for i, prompt in enumerate(prompts):
        cond, cond_mask, neg, neg_mask = _reference(pipeline, prompt, negative=prompt)
        torch.testing.assert_close(embeddings[i : i + 1], cond, rtol=0, atol=1e-5)
        assert torch.equal(mask[i : i + 1], cond_mask)
        torch.testing.assert_close(negatives[i : i + 1], neg, rtol=0, atol=1e-5)
        assert torch.equal(negative_mask[i : i + 1], neg_mask)
    assert mask[2].all() and not mask[0].all()  # the long prompt fills every position


def test_custom_and_empty_system_prompts(gemma_folder, pipeline):
    custom = ["Describe the scene:", "Scene: "]
    encoder = Gemma2TextEncoder.from_pretrained(gemma_folder, max_length=MAX_LENGTH, system_prompt=custom)
    cond, cond_mask, _, _ = _reference(pipeline, SENTENCES[1], chi_prompt=custom)
    embeddings, mask = encoder.encode([SENTENCES[1]])
    torch.testing.assert_close(embeddings, cond, rtol=0, atol=1e-5)
    assert torch.equal(mask, cond_mask)

    bare = Gemma2TextEncoder.from_pretrained(gemma_folder, max_length=MAX_LENGTH, system_prompt="")
    cond, cond_mask, _, _ = _reference(pipeline, SENTENCES[1], chi_prompt=None)
    embeddings, mask = bare.encode([SENTENCES[1]])
    torch.testing.assert_close(embeddings, cond, rtol=0, atol=1e-5)
    assert torch.equal(mask, cond_mask)


def test_loads_a_pipeline_folder_layout(gemma_folder, tmp_path):
    for sub, names in (
        ("text_encoder", ("config.json", "model.safetensors")),
        ("tokenizer", ("tokenizer*",)),
    ):
        (tmp_path / sub).mkdir()
        for pattern in names:
            for f in gemma_folder.glob(pattern):
                (tmp_path / sub / f.name).write_bytes(f.read_bytes())
    encoder = Gemma2TextEncoder.from_pretrained(tmp_path, max_length=MAX_LENGTH)
    reference = Gemma2TextEncoder.from_pretrained(gemma_folder, max_length=MAX_LENGTH)
    assert torch.equal(encoder.encode(SENTENCES[:1])[0], reference.encode(SENTENCES[:1])[0])


def test_missing_or_wrong_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Gemma2TextEncoder.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="expected config.json with model_type 'gemma2'"):
        Gemma2TextEncoder.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="expected config.json with model_type 'gemma2'.*found 'llama'"):
        Gemma2TextEncoder.from_pretrained(tmp_path)


def test_null_encoder():
    encoder = NullTextEncoder(2304)
    embeddings, mask = encoder.encode(["a prompt", ""])
    assert embeddings.shape == (2, 0, 2304) and embeddings.dtype == torch.float32
    assert mask.shape == (2, 0) and mask.dtype == torch.bool
    assert encoder.encode_negative([""])[0].shape == (1, 0, 2304)
    with pytest.raises(TypeError, match="list of strings"):
        encoder.encode("a prompt")
    with pytest.raises(ValueError, match="prompts is empty"):
        encoder.encode([])
