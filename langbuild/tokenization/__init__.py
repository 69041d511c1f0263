"""The tokenizer step's machinery: sampling the train split, training, SentencePiece conversion, the size sweep.

Libraries and algorithms (``tokenizer.library`` × ``tokenizer.model_type``):

* SentencePiece unigram or BPE (Kudo 2018; Sennrich et al. 2016; Kudo & Richardson 2018), trained
  with settings under which decode(encode(x)) == x on real text: identity normalisation, no
  whitespace collapsing, full character coverage, and byte fallback for unseen characters
  (``tokenizer.byte_fallback``; without it they become ``<unk>``);
* Hugging Face ``tokenizers``: ``bpe`` is byte-level BPE as in GPT-2 (Radford et al. 2019): text is
  cut into words by the ByteLevel regex and spelled in the 256 byte symbols, so nothing is unknown;
  ``unigram`` is a Unigram LM with SentencePiece's whitespace convention (spaces become "▁", each
  word keeps its leading one) and, with ``tokenizer.byte_fallback``, 256 byte pieces appended.

Modules: :mod:`.sampling` (the reservoir sample of the train split), :mod:`.sentencepiece` (trainer
settings, the model file, exact conversion to ``tokenizers``), :mod:`.training` (both libraries'
trainers and saving), :mod:`.sweep` (``tokenizer.vocab_size = "auto"``) and :mod:`.comparison`
(the new tokenizer against the base ones).
"""
