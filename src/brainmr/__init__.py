"""brainmr: brain MR image generation on instruction (DreamBooth SD) and its evaluation."""

__version__ = "0.1.0"

# The one home of the study's classes (order: AD before CN, as in the paper's Table 1), of their
# label coding (the CNN's output index and every 0/1 label: 0 = CN, 1 = AD) and of the slice size
# (1 mm centre coronal slice, 160 x 160, as in the paper), and of the sex codes.
GROUPS: tuple[str, ...] = ("AD", "CN")
LABELS: tuple[str, ...] = ("CN", "AD")  # CNN/label index: 1 = AD
SLICE_SIZE: int = 160
SEXES: tuple[str, ...] = ("F", "M")  # the LONI CSV's sex codes; the sex judge outputs P(M)
