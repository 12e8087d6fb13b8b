"""Benchmark-only workaround: load llama.cpp models without its extra CPU buffer types.

On this machine llama.cpp's AMX / repacked weight buffers crash the first decode (segmentation
fault): the CPU reports AMX but the sandbox does not grant it. With this folder on PYTHONPATH
(``eval/bench_selectors.py`` puts it there for itself and for the server it starts), every
``llama_cpp.Llama`` is created with ``use_extra_bufts = False``; nothing else changes.
"""

import importlib.abc
import importlib.util
import sys


def _patch(module) -> None:
    original = module.llama_model_default_params

    def without_extra_buffers():
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = without_extra_buffers


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "llama_cpp.llama_cpp":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            _patch(module)

        loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _PatchOnImport())
