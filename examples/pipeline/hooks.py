"""The classifier's species ids → names."""

SPECIES = ("setosa", "versicolor", "virginica")


def species_names(out):
    return [SPECIES[int(label)] for label in out]
