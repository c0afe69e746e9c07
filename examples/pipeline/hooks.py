"""The classifier's species ids → names."""

SPECIES = ("setosa", "versicolor", "virginica")


def species_names(out):
    return [SPECIES[int(label)] for label in out]


species_names.thread_safe = True  # no shared state: need not wait for the stage's lock
