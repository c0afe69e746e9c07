"""Make model/: a blank English spaCy pipeline with a sentencizer."""
import spacy

nlp = spacy.blank("en")
nlp.add_pipe("sentencizer")
nlp.to_disk("model")
