"""GAN training techniques as small plug-ins for a discriminator split into features F and head J.

One module per technique (Salimans et al. 2016, "Improved Techniques for Training GANs", and the Bures-metric
GAN of De Meulemeester et al.):

- `feature_matching`: G's loss ||E f(x) - E f(G(z))||^2 on D's features.
- `minibatch_discrimination`: a layer that appends cross-sample closeness statistics to D's features.
- `label_smoothing`: one-sided label smoothing of D's real targets for the logistic loss.
- `historical_averaging`: the penalty ||theta - (1/t) sum_i theta_i||^2 with an exact, resumable running mean.
- `virtual_batch_norm`: batch normalisation with the statistics of a fixed reference batch plus the example.
- `bures`: the Bures distance between the normalised covariance matrices of real and fake features, and the
  Alt-Bures schedule.
- `composition`: the added loss terms of both players (the terms above and the AdaptiveMix weight), composed
  once for train.py's StyleGAN2 loss and the labs' losses; a new technique that adds a loss term joins there.

AdaptiveMix itself is the separate `adaptivemix` package.
"""
