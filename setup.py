from setuptools import find_packages, setup

setup(
    name='mmkd',
    version='0.1.0',
    description='Knowledge distillation for MMDetection and MMSegmentation',
    packages=find_packages(include=['mmkd', 'mmkd.*']),
    python_requires='>=3.8',
    # mmcv must be built with its ops (see tools/setup_env.sh), so pip is
    # not asked to resolve it here
    install_requires=['torch>=2.0', 'mmengine==0.10.7', 'mmdet==3.3.0',
                      'mmsegmentation==1.2.2', 'pycocotools'],
)
