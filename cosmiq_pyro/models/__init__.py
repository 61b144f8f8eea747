"""The networks: the plain U-Net (`unet`), its Bayesian twin built from a prior, a likelihood
and a guide (`bayesian`), and the fused inference-time passes (`fused`)."""
