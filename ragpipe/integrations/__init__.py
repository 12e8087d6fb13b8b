"""Adapters for LangChain (``ragpipe.integrations.langchain``) and LlamaIndex (``…llamaindex``).

Import the submodule you need; each imports only its own framework.
"""
