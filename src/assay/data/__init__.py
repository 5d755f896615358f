"""Text in, tokens out: corpora and splits (corpus.py, kjv.py), tokenizers (tokenizer.py), the token
cache (tokens.py), block sampling (blocks.py), the [data] and [stream] configs (config.py), and
streams of training shards (stream.py) with their producer (produce.py), the core's masked-LM
provider (providers.py) and a look at one sample (inspect.py). docs/judges.md describes streams."""
