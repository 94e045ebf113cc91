from .resnet_slowfast import ResNetSlowFast

__all__ = ["ResNetSlowFast"]
