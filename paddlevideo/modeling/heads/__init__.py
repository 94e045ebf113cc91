from .slowfast_head import SlowFastHead

__all__ = ["SlowFastHead"]
