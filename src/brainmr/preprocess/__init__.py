"""brainmr.preprocess: skull strip, rigid alignment to MNI152 and the centre coronal slice.

Import from the submodules: ``slicing`` needs numpy alone (the demo corpus uses it in the
diffusion env), ``scan`` the whole SimpleITK/deepbet stack."""
