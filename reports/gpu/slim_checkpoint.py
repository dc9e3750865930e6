import json, struct, sys
# Keep only the EMA weights of a fewstep checkpoint (what sampling reads), for carrying.
src, dst = sys.argv[1], sys.argv[2]
b = open(src, 'rb').read()
assert b[:8] == b'FEWSTEP\x01'
n = struct.unpack('<Q', b[8:16])[0]
h = json.loads(b[16:16+n]); off = 16 + n; blobs = {}
for name, ln in h['blobs']:
    blobs[name] = b[off:off+ln]; off += ln
h['blobs'] = [['ema', len(blobs['ema'])]]
hj = json.dumps(h).encode()
open(dst, 'wb').write(b'FEWSTEP\x01' + struct.pack('<Q', len(hj)) + hj + blobs['ema'])
