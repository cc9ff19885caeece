"""The fine-tuning methods: one module per method family, each registering its entries
(registry.py) when this package is imported. A new method is a new module here that defines its
entry (a Method subclass with its formulas, memory terms and defaults, base.py) and calls
``register_method``: no other file changes (docs/architecture.md, "Adding a method")."""
import importlib
import pkgutil

from .base import Method
from .registry import adapt, display_order, get_method, method_names, register_method, unregister_method

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from .full import FULL  # noqa: E402
from .lamda import LAMDA, LAMDA_PLUS, LamdaMethod  # noqa: E402
from .lora import DORA, LORA, PISSA, DoraMethod, LoraMethod, PissaMethod  # noqa: E402
from .peft import PeftMethod  # noqa: E402
from .peft_family import PSOFT, VERA, PsoftMethod, VeraMethod  # noqa: E402

__all__ = ["Method", "LamdaMethod", "PeftMethod", "LoraMethod", "DoraMethod", "PissaMethod", "VeraMethod",
           "PsoftMethod", "LAMDA", "LAMDA_PLUS", "LORA", "DORA", "PISSA", "VERA", "PSOFT", "FULL", "adapt",
           "display_order", "get_method", "method_names", "register_method", "unregister_method"]
