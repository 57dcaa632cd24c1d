"""Speech input for rnnkit: audio files, log-mel features and a synthesised spoken-digit data set.

Modules (each imported on demand; this package imports nothing itself):

- ``wav``: read and write 16-bit PCM WAV files and bytes; band-limited resampling.
- ``features``: framing, the mel filter bank, log-mel features and per-utterance normalisation.
- ``noise``: white, pink and brown noise added at a chosen signal-to-noise ratio.
- ``espeak``: speech synthesis with the ``espeak-ng`` program (its voices and variants).
- ``spoken_digits``: the offline spoken-digit data set (digit strings spoken by espeak-ng voices,
  split by voice variant), its labels for CTC, a feature cache, and the features of any audio.
- ``plot``: an utterance's spectrogram with the label probabilities a recogniser gives its frames.
"""
