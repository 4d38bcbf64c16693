"""The semi-supervised GAN lab (Salimans et al. 2016): a K+1-class discriminator on few labels."""
