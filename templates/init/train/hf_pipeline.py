"""Make model/: a tiny, randomly initialised text classifier and its tokenizer.

Nothing is downloaded: the vocabulary is written here, the weights are random.
Replace it with your own saved pipeline (pipe.save_pretrained("model")).
"""
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

words = "[PAD] [UNK] [CLS] [SEP] [MASK] i love hate this movie film good bad great awful it was is".split()
tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
fast = PreTrainedTokenizerFast(
    tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
)
config = BertConfig(
    vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=64, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
)
model = BertForSequenceClassification(config)
model.save_pretrained("model")
fast.save_pretrained("model")
