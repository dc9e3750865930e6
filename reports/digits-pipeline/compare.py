"""Bit-identity check of two `fewstep pipeline` runs: every model's metrics, NFE, sampler and
grid image, the headline and the real-vs-real floor must be equal; timings may differ."""
import json, sys, hashlib, os
a, b = sys.argv[1], sys.argv[2]
ra = json.load(open(os.path.join(a, 'report/results.json')))
rb = json.load(open(os.path.join(b, 'report/results.json')))
bad = 0
def same(what, x, y):
    global bad
    if x != y:
        bad += 1
        print(f'DIFF {what}: {x!r} vs {y!r}')
same('real_vs_real', ra['real_vs_real'], rb['real_vs_real'])
same('n models', len(ra['models']), len(rb['models']))
for ma, mb in zip(ra['models'], rb['models']):
    tag = f"{ma['name']}-{ma['steps']}"
    for k in ['name', 'kind', 'steps', 'nfe', 'guidance', 'sampler', 'seed', 'metrics', 'grid']:
        same(f'{tag}.{k}', ma.get(k), mb.get(k))
    ga, gb = (open(os.path.join(d, 'report', ma['grid']), 'rb').read() for d in (a, b))
    same(f'{tag} grid sha256', hashlib.sha256(ga).hexdigest(), hashlib.sha256(gb).hexdigest())
ha = {k: v for k, v in ra['headline'].items() if 'speed' not in k}
hb = {k: v for k, v in rb['headline'].items() if 'speed' not in k}
same('headline (speedups aside)', ha, hb)
print(f"{len(ra['models'])} models compared, {bad} differences")
