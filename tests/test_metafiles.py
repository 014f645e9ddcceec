"""The OpenMMLab metafiles and the model index (mim / model-index).

Every method folder of ``configs/det`` and ``configs/seg`` that holds
distillation configs has a ``metafile.yml`` in MMDetection's format, and
``model-index.yml`` imports them all. These checks only read YAML and look
at the file tree: no model is built.
"""
import glob
import numbers
import os.path as osp
from collections import Counter

import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: task folder -> (Training Data / Dataset, the Results' Task)
TASKS = {
    'det': ('COCO', 'Object Detection'),
    'seg': ('Cityscapes', 'Semantic Segmentation'),
}


def _rel(path: str) -> str:
    return osp.relpath(path, REPO).replace(osp.sep, '/')


#: every metafile on disk, repo-relative
METAFILES = sorted(
    _rel(p) for p in glob.glob(osp.join(REPO, 'configs', '*', '*',
                                        'metafile.yml')))

#: every folder configs/{det,seg}/<method>/ holding configs directly
CONFIG_DIRS = sorted(
    _rel(d) for task in TASKS
    for d in glob.glob(osp.join(REPO, 'configs', task, '*'))
    if osp.isdir(d) and glob.glob(osp.join(d, '*.py')))


def _load(rel_path: str):
    with open(osp.join(REPO, rel_path), encoding='utf-8') as f:
        return yaml.safe_load(f)


def _task_of(rel_path: str) -> str:
    return rel_path.split('/')[1]


def test_there_is_something_to_check():
    assert CONFIG_DIRS, 'no config folders found'
    assert METAFILES, 'no metafiles found'


@pytest.mark.parametrize('config_dir', CONFIG_DIRS)
def test_every_config_folder_has_a_metafile(config_dir):
    assert osp.isfile(osp.join(REPO, config_dir, 'metafile.yml')), (
        f'{config_dir} holds configs but no metafile.yml')


def test_model_index_imports_every_metafile():
    index = _load('model-index.yml')
    assert isinstance(index, dict) and set(index) == {'Import'}, index
    imports = index['Import']
    assert isinstance(imports, list) and imports
    assert imports == sorted(imports), 'Import is not sorted'
    dupes = [p for p, n in Counter(imports).items() if n > 1]
    assert not dupes, f'imported more than once: {dupes}'
    assert set(imports) == set(METAFILES), (
        f'missing: {sorted(set(METAFILES) - set(imports))}; '
        f'not on disk: {sorted(set(imports) - set(METAFILES))}')


@pytest.mark.parametrize('metafile', METAFILES)
def test_metafile_structure(metafile):
    meta = _load(metafile)
    assert isinstance(meta, dict), 'not a mapping'
    assert set(meta) <= {'Collections', 'Models'}, set(meta)
    assert isinstance(meta.get('Collections'), list) and meta['Collections']
    assert isinstance(meta.get('Models'), list) and meta['Models']


@pytest.mark.parametrize('metafile', METAFILES)
def test_collections(metafile):
    folder = osp.dirname(metafile)
    data, _ = TASKS[_task_of(metafile)]
    for col in _load(metafile)['Collections']:
        name = col.get('Name')
        assert isinstance(name, str) and name, col
        md = col.get('Metadata') or {}
        assert md.get('Training Data') == data, (name, md.get('Training Data'))
        techniques = md.get('Training Techniques')
        assert isinstance(techniques, list) and techniques, name
        assert 'Knowledge Distillation' in techniques, name
        arch = md.get('Architecture')
        assert isinstance(arch, list) and arch, name
        if 'Paper' in col:
            paper = col['Paper']
            assert isinstance(paper, dict), (name, paper)
            assert isinstance(paper.get('Title'), str) and paper['Title']
            if 'URL' in paper:
                assert paper['URL'].startswith('https://'), paper['URL']
        readme = col.get('README')
        assert readme == f'{folder}/README.md', (name, readme)
        assert osp.isfile(osp.join(REPO, readme)), readme
        # mmkd has no public repository yet: no Code link to point at
        assert 'Code' not in col, name


@pytest.mark.parametrize('metafile', METAFILES)
def test_models(metafile):
    folder = osp.dirname(metafile)
    data, _ = TASKS[_task_of(metafile)]
    meta = _load(metafile)
    collections = {c['Name'] for c in meta['Collections']}
    for model in meta['Models']:
        name = model.get('Name')
        assert isinstance(name, str) and name, model
        assert model.get('In Collection') in collections, (
            name, model.get('In Collection'), collections)
        config = model.get('Config')
        assert isinstance(config, str), name
        assert osp.isfile(osp.join(REPO, config)), f'{name}: {config} missing'
        assert osp.dirname(config) == folder, (name, config)
        assert osp.basename(config) == f'{name}.py', (name, config)
        md = model.get('Metadata') or {}
        assert md.get('Training Data') == data, (name, md)
        for key in ('Teacher', 'Student'):
            assert isinstance(md.get(key), str) and md[key].strip(), (
                f'{name}: Metadata.{key} missing')


@pytest.mark.parametrize('metafile', METAFILES)
def test_every_config_listed_exactly_once(metafile):
    folder = osp.dirname(metafile)
    on_disk = sorted(
        _rel(p) for p in glob.glob(osp.join(REPO, folder, '*.py')))
    listed = Counter(m.get('Config') for m in _load(metafile)['Models'])
    for config in on_disk:
        assert listed[config] == 1, (
            f'{config} listed {listed[config]} times')
    assert set(listed) == set(on_disk), (
        f'not a config of {folder}: {sorted(set(listed) - set(on_disk))}')


@pytest.mark.parametrize('metafile', METAFILES)
def test_results(metafile):
    data, task = TASKS[_task_of(metafile)]
    with open(osp.join(REPO, osp.dirname(metafile), 'README.md'),
              encoding='utf-8') as f:
        readme = f.read()
    for model in _load(metafile)['Models']:
        if 'Results' not in model:
            continue
        results = model['Results']
        assert isinstance(results, list) and results, model['Name']
        for result in results:
            where = f"{model['Name']}: {result}"
            assert result.get('Task') == task, where
            assert result.get('Dataset') == data, where
            metrics = result.get('Metrics')
            assert isinstance(metrics, dict) and metrics, where
            for key, value in metrics.items():
                assert isinstance(key, str) and key, where
                assert isinstance(value, numbers.Real) and not isinstance(
                    value, bool), where
            source = result.get('Source')
            assert isinstance(source, str), f'{where}: no Source'
            assert source.startswith(('published', 'mmkd')), where
            if source.startswith('published'):
                # a published number must be one the folder's README states
                for value in metrics.values():
                    spellings = {str(value), f'{value:.1f}', f'{value:.2f}'}
                    assert any(s in readme for s in spellings), (
                        f'{where}: {value} is not in the README')


def test_names_are_unique_across_metafiles():
    models, collections = Counter(), Counter()
    for metafile in METAFILES:
        meta = _load(metafile)
        collections.update(c['Name'] for c in meta['Collections'])
        models.update(m['Name'] for m in meta['Models'])
    assert not [n for n, k in collections.items() if k > 1], collections
    assert not [n for n, k in models.items() if k > 1], models
