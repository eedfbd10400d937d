"""The price model: a scikit-learn Pipeline from string fields to log1p(price).

Text fields go through TF-IDF and category fields through a one-hot encoder, into
one of the candidate regressors below. Every step has a skl2onnx converter, and the
feature settings avoid what the ONNX graph cannot reproduce:

- ONNX Runtime's tokenizer matches `\\w` against ASCII only, so the token pattern is
  explicitly ASCII (`[a-z0-9]+` after lower-casing), so both sides treat every other
  character as a separator. There is no strip_accents, char_wb analyzer or custom tokenizer.
  NOTE: "İ" (U+0130) still differs, because Python lower-cases it to two characters;
  scikit-learn splits "İstanbul" into "i" and "stanbul", ONNX Runtime keeps "istanbul".
- skl2onnx 1.20 converts `sublinear_tf=True` into a graph whose TF-IDF values differ
  from scikit-learn's by up to 0.02, so the vectorizers keep raw term counts.
- skl2onnx 1.20 assumes that both words of a bigram are in the vocabulary, and
  otherwise treats the bigram as one token that never matches. `max_features` can
  drop a word that ties at the cut-off while keeping a bigram with it, so the
  vocabulary is bounded by `min_df` alone: a word occurs in at least as many rows
  as any bigram that contains it.

Gradient boosting is not a candidate: skl2onnx 1.20.0 fails to convert a
HistGradientBoostingRegressor fitted with scikit-learn 1.9.1 ("Expected an int, got a
boolean" while building TreeEnsembleRegressor), and on H&M and the catalogue it
scored worse than Ridge in the selection step.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import LinearSVR

from training.price.adapters import CATEGORY, TEXT, FieldSpec

TOKEN_PATTERN = r"[a-z0-9]+"
NGRAM_RANGE = (1, 2)
# A term must appear in two training rows, which drops typos and ids that cannot
# generalise. It is also the only bound on the vocabulary (see the module docstring).
MIN_DOCUMENT_FREQUENCY = 2


@dataclass(frozen=True)
class Candidate:
    """A regressor to compare: its factory and the description that metrics.json records."""

    make_regressor: Callable[[int], object]  # seed -> unfitted regressor
    description: str


CANDIDATES: dict[str, Candidate] = {
    "ridge-0.3": Candidate(lambda seed: Ridge(alpha=0.3), "Ridge, alpha 0.3"),
    "ridge-1": Candidate(lambda seed: Ridge(alpha=1.0), "Ridge, alpha 1"),
    "ridge-3": Candidate(lambda seed: Ridge(alpha=3.0), "Ridge, alpha 3"),
    # With epsilon 0 the squared epsilon-insensitive loss is squared error, so this is
    # L2-regularised least squares like Ridge, but liblinear also penalises the intercept.
    "linear-svr": Candidate(
        lambda seed: LinearSVR(C=0.3, epsilon=0.0, loss="squared_epsilon_insensitive", max_iter=5000, random_state=seed),
        "LinearSVR, squared epsilon-insensitive loss, C 0.3",
    ),
    # The non-linear candidate. 10% of its training rows serve for early stopping.
    "mlp": Candidate(
        lambda seed: MLPRegressor(hidden_layer_sizes=(32,), alpha=1e-2, early_stopping=True, max_iter=40, random_state=seed),
        "MLPRegressor, one hidden layer of 32 ReLU units, L2 1e-2, early stopping",
    ),
}
DEFAULT_CANDIDATES = tuple(CANDIDATES)


def text_vectorizer() -> TfidfVectorizer:
    """Build the TF-IDF vectorizer for one text field, with the ASCII token pattern that ONNX reproduces."""
    return TfidfVectorizer(
        lowercase=True,
        token_pattern=TOKEN_PATTERN,
        ngram_range=NGRAM_RANGE,
        min_df=MIN_DOCUMENT_FREQUENCY,
    )


def feature_transformer(fields: Sequence[FieldSpec]) -> ColumnTransformer:
    """Build the ColumnTransformer: one TF-IDF per text field and one one-hot encoder for all category fields."""
    unknown = [field.name for field in fields if field.kind not in (TEXT, CATEGORY)]
    if unknown:
        raise ValueError(f"fields {unknown} have an unknown kind; use {TEXT!r} or {CATEGORY!r}")

    transformers = [(field.name, text_vectorizer(), field.name) for field in fields if field.kind == TEXT]
    categories = [field.name for field in fields if field.kind == CATEGORY]
    if categories:
        transformers.append(("categories", OneHotEncoder(handle_unknown="ignore"), categories))
    return ColumnTransformer(transformers)


def build_pipeline(fields: Sequence[FieldSpec], candidate: str, seed: int = 0) -> Pipeline:
    """Build the unfitted pipeline of `candidate` (a key of CANDIDATES) for `fields`."""
    if candidate not in CANDIDATES:
        raise ValueError(f"unknown regressor {candidate!r}; choose from {', '.join(CANDIDATES)}")

    spec = CANDIDATES[candidate]
    return Pipeline(
        [
            ("features", feature_transformer(fields)),
            ("regressor", spec.make_regressor(seed)),
        ]
    )
