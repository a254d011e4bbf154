"""Placeholder; replaced below."""


def docs_section(topic: str) -> str:
    return topic


def list_topics() -> str:
    return ""
