"""brainmr: brain MR image generation on instruction (DreamBooth SD) and its evaluation."""

__version__ = "0.1.0"

# The one home of the study's classes (order: AD before CN, as in the paper's Table 1) and of the
# slice size (1 mm centre coronal slice, 160 x 160, as in the paper).
GROUPS: tuple[str, ...] = ("AD", "CN")
SLICE_SIZE: int = 160
