"""The DCGAN lab: small convolutional GANs on image zips, with AdaptiveMix and the Salimans techniques."""
