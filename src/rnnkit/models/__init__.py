"""Ready models, one per topology: input layer -> recurrent stack -> head.

``BUILT_IN`` is the table of rnnkit's own classes that a model file may name: ``rnnkit.load``
rebuilds these, and the classes users ``rnnkit.register``, by class name. A new model class is
one module here plus one entry in the table.
"""

from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.forecaster import ForecastEnsemble, Forecaster
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.recogniser import SpeechRecogniser
from rnnkit.models.regressor import SequenceRegressor
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell

BUILT_IN = (
    RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, Recurrent, RecurrentCell, LanguageModel,
    SequenceClassifier, SequenceRegressor, Forecaster, ForecastEnsemble, Seq2Seq,
    ConditionalGenerator, SpeechRecogniser,
)  # fmt: skip
