"""Helpers for the end-to-end tests: run the tools as a user would."""
import os
import os.path as osp
import subprocess
import sys
from typing import List

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run_tool(args: List[str], cwd: str, check: bool = True,
             timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` and return the finished process."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f'{" ".join(args)} failed ({proc.returncode}):\n'
            f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def run_python(code: str, cwd: str) -> str:
    """Run ``code`` in a fresh interpreter (no pytest imports around)."""
    proc = subprocess.run([sys.executable, '-c', code], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stdout


def tool(name: str) -> str:
    return osp.join(REPO, 'tools', name)


def extract_and_test(workspace: dict, out_name: str,
                     test_options: List[str]) -> str:
    """extract_student.py (checked against the plain config), then the
    plain config's test through test.py; returns the test log."""
    root = workspace['root']
    out = root / out_name
    run_tool([tool('extract_student.py'), str(workspace['ckpt']), str(out),
              '--student-config', str(workspace['plain'])], cwd=str(root))
    proc = run_tool([tool('test.py'), str(workspace['plain']), str(out),
                     '--work-dir', str(root / 'test'), '--cfg-options',
                     *test_options], cwd=str(root))
    return proc.stdout + proc.stderr
