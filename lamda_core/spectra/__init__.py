"""Singular-value spectra of the pretrained weights and the LaMDA++ rank allocation built on them."""
