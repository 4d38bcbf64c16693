"""What several labs share: image loading, the GAN objectives, the DCGAN-style losses, lab snapshots."""
