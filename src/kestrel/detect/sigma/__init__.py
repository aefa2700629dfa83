"""The Sigma rule engine: SigmaHQ rules over Kestrel batches, vectorized.

Contract: rules are loaded with pySigma (`load.py`), put into Kestrel's terms by pySigma
processing pipelines (`pipelines.py`), compiled to Polars expressions (`compile.py`) and
evaluated over whole batches by `SigmaEngine` (`engine.py`): dispatch by logsource, then an
Aho-Corasick prefilter on each rule's required literals, then the exact expression on the
few candidate events. Matching is case-insensitive and NULL-safe, as Sigma specifies.
Matches become `Finding`s (`findings.py`); `SigmaDetector` is the `Detector` for the pipeline.
A rule that cannot be loaded or compiled is reported with its reason and never stops the rest.
"""

from kestrel.detect.sigma.compile import CompiledRule, compile_rule, compile_rules
from kestrel.detect.sigma.detector import SigmaDetector
from kestrel.detect.sigma.engine import SigmaEngine
from kestrel.detect.sigma.load import RuleError, RuleIssue, RuleSet, load_rules, load_text

__all__ = [
    "CompiledRule",
    "RuleError",
    "RuleIssue",
    "RuleSet",
    "SigmaDetector",
    "SigmaEngine",
    "compile_rule",
    "compile_rules",
    "load_rules",
    "load_text",
]
