import os

from setuptools import find_packages, setup

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "requirements.txt"), encoding="utf-8") as f:
    requirements = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="paddlevideo-slowfast",
    version="0.1.0",
    description="SlowFast video recognition on PaddlePaddle 3, compatible with PaddleVideo",
    packages=find_packages(include=["paddlevideo", "paddlevideo.*"]),
    package_data={"paddlevideo.serving": ["static/*.html"]},
    python_requires=">=3.9",
    install_requires=requirements,
    # int8 post-training quantization for the OpenVINO engine (tools/quantize.py)
    extras_require={"quantize": ["nncf"]},
)
