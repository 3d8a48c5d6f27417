"""Offline synthetic RGB-D scenes in the MAI 2022 layout.

    generate("data/synthetic", n_train=400, n_val=200, seed=0)   # or: python -m litedepth_tf.synthetic ...

writes ``OUT/{train,local_val}/{rgb,depth}/NNNNN.png``: RGB uint8 480x640, depth uint16 PNG in millimetres,
``0`` = invalid (MAI convention).

Every frame is real 3-D geometry ray-cast (vectorised NumPy, one ray per pixel) with a pinhole camera using
``MAI_INTRINSICS`` (fx~519 at 640 px); the stored depth is the z-depth along the optical axis, the same quantity
the pipeline back-projects with the intrinsics. Scenes are either

* indoor: a room (floor, walls, ceiling) of random size, up to a long hall of ~35 m, lit by a point light with
  inverse-square fall-off, or
* outdoor: an infinite ground plane, far building blocks, a sky above the horizon, a sun and distance haze,

filled with boxes (random yaw), spheres and vertical cylinders resting on the floor. Depth cues that a network can
learn: world-space textures (checker, tiles, stripes, value noise) whose image-space scale shrinks with distance
(and fades to the mean albedo once a texel gets smaller than a pixel, i.e. cheap anti-aliasing), perspective of
the floor towards the horizon, occlusion, Lambertian shading with cast shadows, light fall-off and haze.

Invalid depth (0) where a real ToF / stereo sensor has none: sky, beyond ``MAX_DEPTH`` (40 m), closer than
``MIN_VALID_DEPTH`` (0.3 m), grazing surfaces, random dropouts along depth discontinuities and a few random
specular blobs.

Each frame depends only on ``(seed, split, index)`` (its own ``numpy.random.default_rng``), so any number of
worker processes produces byte-identical files. PNGs are written atomically (temp file + ``os.replace``); a
``synthetic.json`` manifest written last marks a complete set (``ensure_synthetic`` reuses such a set).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from litedepth_tf.common.constants import DEPTH_SCALE, INPUT_HEIGHT, INPUT_WIDTH, MAI_INTRINSICS, MAX_DEPTH
from litedepth_tf.common.progress import progress_bar

MIN_VALID_DEPTH = 0.3  # metres; closer is invalid (sensor minimum range)
SPLITS = {"train": 0, "local_val": 1}
MANIFEST = "synthetic.json"
GENERATOR_VERSION = 1
_INF = np.float32(np.inf)
_EPS = 1e-4


# --------------------------------------------------------------------------------------------- geometry
# Rays: origin O (3 arrays or 3 scalars), direction D (3 arrays, not normalised). Every intersector returns t
# (float32 array, inf where missed) such that the hit point is O + t * D.


def _hit_sphere(O, D, c, r):
    ox, oy, oz = O[0] - c[0], O[1] - c[1], O[2] - c[2]
    a = D[0] * D[0] + D[1] * D[1] + D[2] * D[2]
    b = ox * D[0] + oy * D[1] + oz * D[2]
    cc = ox * ox + oy * oy + oz * oz - r * r
    disc = b * b - a * cc
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0))
    t = (-b - sq) / a
    return np.where(ok & (t > _EPS), t, _INF).astype(np.float32)


def _hit_cylinder(O, D, c, r, h):
    """Vertical cylinder, axis through (c[0], ., c[2]), y in [0, h], closed top."""
    ox, oz = O[0] - c[0], O[2] - c[2]
    a = D[0] * D[0] + D[2] * D[2]
    b = ox * D[0] + oz * D[2]
    cc = ox * ox + oz * oz - r * r
    disc = b * b - a * cc
    ok = (disc >= 0) & (a > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0))
    t = (-b - sq) / np.where(a > 1e-12, a, 1)
    y = O[1] + t * D[1]
    t_side = np.where(ok & (t > _EPS) & (y >= 0) & (y <= h), t, _INF)
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (h - O[1]) / D[1]
    xc, zc = ox + tc * D[0], oz + tc * D[2]
    t_cap = np.where((tc > _EPS) & (xc * xc + zc * zc <= r * r), tc, _INF)
    return np.minimum(t_side, t_cap).astype(np.float32)


def _to_local(O, D, c, yaw):
    cs, sn = np.cos(yaw), np.sin(yaw)
    ox, oy, oz = O[0] - c[0], O[1] - c[1], O[2] - c[2]
    Ol = (cs * ox - sn * oz, oy, sn * ox + cs * oz)
    Dl = (cs * D[0] - sn * D[2], D[1], sn * D[0] + cs * D[2])
    return Ol, Dl


def _hit_box(O, D, c, half, yaw):
    """Box centred at c with half extents ``half``, rotated by ``yaw`` about the vertical axis (camera outside)."""
    Ol, Dl = _to_local(O, D, c, yaw)
    tn, tf = None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            inv = 1.0 / Dl[k]
            t1 = (-half[k] - Ol[k]) * inv
            t2 = (half[k] - Ol[k]) * inv
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            tn = lo if tn is None else np.maximum(tn, lo)
            tf = hi if tf is None else np.minimum(tf, hi)
    hit = (tn <= tf) & (tn > _EPS)
    return np.where(hit, tn, _INF).astype(np.float32)


def _hit_room(O, D, lo, hi):
    """Inside of an axis-aligned box (camera inside): exit distance."""
    t = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            tk = (np.where(D[k] > 0, hi[k], lo[k]) - O[k]) / D[k]
            tk = np.where(np.isfinite(tk) & (tk > 0), tk, _INF)
            t = tk if t is None else np.minimum(t, tk)
    return t.astype(np.float32)


def _hit_floor(O, D):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -O[1] / D[1]
    return np.where((D[1] < 0) & (t > _EPS), t, _INF).astype(np.float32)


def _may_hit_sphere(O, D, c, r):
    """Rays (O + t D, t real) that come within ``r`` of ``c``: a superset of those that hit an object inside that
    sphere (``r`` is padded by the caller against rounding)."""
    ox, oy, oz = O[0] - c[0], O[1] - c[1], O[2] - c[2]
    a = D[0] * D[0] + D[1] * D[1] + D[2] * D[2]
    b = ox * D[0] + oy * D[1] + oz * D[2]
    cc = ox * ox + oy * oy + oz * oz - r * r
    return b * b - a * cc >= 0


def _culled(hit_fn, O, D, c, r, *args):
    """``hit_fn(O, D, *args)`` evaluated only on the rays that pass the bounding-sphere test (``c``, ``r``), inf on
    the others. Every hit function is elementwise, so the values on the tested rays are bit-identical to evaluating
    all rays; the test is conservative (radius padded by 1 % + 1 cm), so no hit is lost."""
    cand = np.nonzero(_may_hit_sphere(O, D, c, r * 1.01 + 0.01))[0]
    n = D[0].shape[0]
    if cand.size == n:
        return hit_fn(O, D, *args)
    out = np.full(n, _INF, np.float32)
    if cand.size:
        Oc = tuple(o[cand] if np.ndim(o) else o for o in O)
        out[cand] = hit_fn(Oc, tuple(d[cand] for d in D), *args)
    return out


@dataclass
class _Obj:
    kind: str  # floor, room, box, sphere, cylinder
    params: dict
    albedo: np.ndarray
    tex: str = "none"  # none, checker, tiles, stripes, noise
    tex_scale: float = 1.0
    contrast: float = 0.5
    casts_shadow: bool = True
    extra: dict = field(default_factory=dict)

    def hit(self, O, D):
        p = self.params
        if self.kind == "floor":
            return _hit_floor(O, D)
        if self.kind == "room":
            return _hit_room(O, D, p["lo"], p["hi"])
        if self.kind == "box":  # bounding sphere: the centre, the half-diagonal
            radius = float(np.sqrt(sum(float(h) ** 2 for h in p["half"])))
            return _culled(_hit_box, O, D, p["c"], radius, p["c"], p["half"], p["yaw"])
        if self.kind == "sphere":
            return _hit_sphere(O, D, p["c"], p["r"])
        # the cylinder spans y in [0, h] about the axis through (c[0], ., c[2])
        centre = (p["c"][0], 0.5 * p["h"], p["c"][2])
        radius = float(np.sqrt(p["r"] ** 2 + (0.5 * p["h"]) ** 2))
        return _culled(_hit_cylinder, O, D, centre, radius, p["c"], p["r"], p["h"])

    def local_point_normal(self, P):
        """Hit points P (3, n) -> (local point (3, n), local normal (3, n), world normal (3, n))."""
        p = self.params
        n = P.shape[1]
        if self.kind == "floor":
            N = np.zeros((3, n), np.float32)
            N[1] = 1
            return P, N, N
        if self.kind == "room":
            lo, hi = np.asarray(p["lo"], np.float32)[:, None], np.asarray(p["hi"], np.float32)[:, None]
            dist = np.concatenate([np.abs(P - lo), np.abs(P - hi)], 0)  # (6, n)
            face = np.argmin(dist, 0)
            N = np.zeros((3, n), np.float32)
            axis = face % 3
            N[axis, np.arange(n)] = np.where(face < 3, 1.0, -1.0)
            return P, N, N
        if self.kind == "sphere":
            c = np.asarray(p["c"], np.float32)[:, None]
            N = (P - c) / p["r"]
            return P - c, N, N
        if self.kind == "cylinder":
            c = np.asarray(p["c"], np.float32)[:, None]
            L = P - c
            top = np.abs(P[1] - p["h"]) < 1e-3 * max(1.0, p["h"])
            N = np.stack([L[0] / p["r"], np.zeros(n, np.float32), L[2] / p["r"]])
            N[:, top] = np.array([[0], [1], [0]], np.float32)
            # unwrap the side so that the texture is continuous around the cylinder
            ang = np.arctan2(L[2], L[0]) * p["r"]
            Lt = np.stack([ang, L[1], np.where(top, L[2], 0)])
            Lt[0, top] = L[0, top]
            return Lt, N, N
        # box
        c, yaw, half = np.asarray(p["c"], np.float32)[:, None], p["yaw"], np.asarray(p["half"], np.float32)
        cs, sn = np.cos(yaw), np.sin(yaw)
        L = P - c
        Ll = np.stack([cs * L[0] - sn * L[2], L[1], sn * L[0] + cs * L[2]])
        axis = np.argmax(np.abs(Ll) / half[:, None], 0)
        Nl = np.zeros((3, n), np.float32)
        Nl[axis, np.arange(n)] = np.sign(Ll[axis, np.arange(n)])
        Nw = np.stack([cs * Nl[0] + sn * Nl[2], Nl[1], -sn * Nl[0] + cs * Nl[2]])
        return Ll, Nl, Nw


# --------------------------------------------------------------------------------------------- textures


class _Noise:
    """2-D value noise from a random lattice (periodic, 256 cells), bilinear with smoothstep."""

    def __init__(self, rng):
        self.table = rng.random((256, 256), dtype=np.float32) * 2 - 1

    def __call__(self, u, v):
        fu, fv = np.floor(u), np.floor(v)
        iu, iv = fu.astype(np.int64) & 255, fv.astype(np.int64) & 255
        au, av = u - fu, v - fv
        au, av = au * au * (3 - 2 * au), av * av * (3 - 2 * av)
        t = self.table
        iu1, iv1 = (iu + 1) & 255, (iv + 1) & 255
        a = t[iu, iv] * (1 - au) + t[iu1, iv] * au
        b = t[iu, iv1] * (1 - au) + t[iu1, iv1] * au
        return a * (1 - av) + b * av


def _texture(obj, Pl, Nl, footprint, noise):
    """Signed texture value in about [-1, 1], faded out where a texel is smaller than a pixel."""
    if obj.tex == "none":
        return np.zeros(Pl.shape[1], np.float32)
    # triplanar: project on the plane orthogonal to the dominant local normal axis
    axis = np.argmax(np.abs(Nl), 0)
    u = np.where(axis == 0, Pl[2], Pl[0])
    v = np.where(axis == 1, Pl[2], Pl[1])
    s = obj.tex_scale
    fade = np.clip(1.0 - (footprint / s - 0.2) / 0.4, 0.0, 1.0)
    if obj.tex == "checker":
        val = ((np.floor(u / s) + np.floor(v / s)) % 2) * 2 - 1
    elif obj.tex == "tiles":
        fu, fv = (u / s) % 1.0, (v / s) % 1.0
        grout = (fu < 0.06) | (fv < 0.06)
        val = np.where(grout, -1.0, 0.3)
    elif obj.tex == "stripes":
        val = np.sign(np.sin(2 * np.pi * u / s))
    else:  # two-octave value noise (the fine octave fades first)
        f2 = np.clip(1.0 - (footprint / (s * 0.3) - 0.2) / 0.4, 0.0, 1.0)
        return (0.7 * noise(u / s, v / s) * fade + 0.5 * noise(u / (0.3 * s) + 17.0, v / (0.3 * s)) * f2).astype(
            np.float32
        )
    return (val * fade).astype(np.float32)


# --------------------------------------------------------------------------------------------- scenes


def _rand_color(rng, sat=0.6, lo=0.15, hi=0.85):
    base = rng.uniform(lo, hi)
    c = base * (1 + sat * rng.uniform(-1, 1, 3))
    return np.clip(c, 0.03, 0.95).astype(np.float32)


def _rand_material(rng, scale_range=(0.1, 1.2)):
    return dict(
        albedo=_rand_color(rng),
        tex=str(rng.choice(["none", "checker", "tiles", "stripes", "noise", "noise"])),
        tex_scale=float(np.exp(rng.uniform(*np.log(scale_range)))),
        contrast=float(rng.uniform(0.2, 0.6)),
    )


def _make_scene(rng):
    indoor = rng.random() < 0.5
    cam_h = float(rng.uniform(0.7, 1.9))
    pitch = float(np.deg2rad(rng.uniform(-4, 18)))  # positive looks down
    roll = float(np.deg2rad(rng.uniform(-3, 3)))
    objs: list[_Obj] = []
    scene = dict(indoor=indoor, cam_h=cam_h, pitch=pitch, roll=roll)
    if indoor:
        width = float(rng.uniform(4, 14))
        length = float(np.exp(rng.uniform(np.log(5), np.log(36))))
        height = float(rng.uniform(max(2.4, cam_h + 0.6), 5.0))
        x0 = -float(rng.uniform(0.25, 0.75)) * width
        lo, hi = (x0, 0.0, -1.0), (x0 + width, height, length)
        mat = _rand_material(rng, (0.2, 1.5))
        room = _Obj("room", dict(lo=lo, hi=hi), casts_shadow=False, **mat)
        room.extra["floor_mat"] = _rand_material(rng, (0.2, 1.0))
        room.extra["ceil_albedo"] = _rand_color(rng, 0.1, 0.6, 0.9)
        objs.append(room)
        scene["light"] = np.array(
            [rng.uniform(x0 + 0.5, x0 + width - 0.5), height - 0.1, rng.uniform(1.0, min(length, 12))], np.float32
        )
        scene["light_power"] = float(rng.uniform(0.8, 1.4)) * (length / 6) ** 2 * 0.3 + 2.0
        zmax, xspan = min(length - 0.5, 30.0), (x0 + 0.3, x0 + width - 0.3)
        n_obj = int(rng.integers(2, 9))
    else:
        objs.append(_Obj("floor", {}, casts_shadow=False, **_rand_material(rng, (0.3, 2.0))))
        el, az = np.deg2rad(rng.uniform(20, 60)), np.deg2rad(rng.uniform(-150, 150))
        scene["sun"] = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], np.float32)
        scene["fog"] = float(rng.uniform(60, 250))
        scene["sky_top"] = np.array([0.25, 0.45, 0.85], np.float32) * rng.uniform(0.8, 1.1)
        scene["sky_hor"] = np.array([0.75, 0.82, 0.9], np.float32) * rng.uniform(0.85, 1.05)
        # far building blocks: partly beyond the 40 m range
        for _ in range(int(rng.integers(2, 7))):
            z = float(rng.uniform(18, 70))
            half = (float(rng.uniform(3, 15)), float(rng.uniform(3, 20)), float(rng.uniform(3, 10)))
            c = (float(rng.uniform(-0.9, 0.9) * z), half[1], z + half[2])
            objs.append(_Obj("box", dict(c=c, half=half, yaw=float(rng.uniform(-0.6, 0.6))),
                             **_rand_material(rng, (0.5, 3.0))))
        zmax, xspan = 30.0, None
        n_obj = int(rng.integers(3, 11))
    for _ in range(n_obj):
        z = float(np.exp(rng.uniform(np.log(0.9), np.log(zmax))))
        size = float(np.exp(rng.uniform(np.log(0.2), np.log(1.5)))) * (1 + z / 15)
        z = max(z, 1.6 * size + 0.4)  # keep the camera well outside the object
        if xspan is None:
            x = float(rng.uniform(-0.75, 0.75) * z)
        else:
            x = float(rng.uniform(*xspan))
        kind = str(rng.choice(["box", "sphere", "cylinder"]))
        mat = _rand_material(rng, (0.04, 0.5))
        if kind == "box":
            half = (size * rng.uniform(0.4, 1.2), size * rng.uniform(0.3, 1.5), size * rng.uniform(0.4, 1.2))
            half = tuple(float(h) for h in half)
            lift = 0.0 if rng.random() < 0.85 else float(rng.uniform(0.3, 1.5))
            o = _Obj("box", dict(c=(x, half[1] + lift, z), half=half, yaw=float(rng.uniform(0, np.pi))), **mat)
        elif kind == "sphere":
            r = size * float(rng.uniform(0.4, 0.9))
            lift = 0.0 if rng.random() < 0.8 else float(rng.uniform(0.2, 1.5))
            o = _Obj("sphere", dict(c=(x, r + lift, z), r=r), **mat)
        else:
            r = size * float(rng.uniform(0.15, 0.6))
            o = _Obj("cylinder", dict(c=(x, 0.0, z), r=r, h=float(size * rng.uniform(1.0, 4.0))), **mat)
        objs.append(o)
    scene["objs"] = objs
    return scene


def _camera_rays(scene, h, w, intrinsics):
    fx, fy, cx, cy = intrinsics
    u = np.arange(w, dtype=np.float32)
    v = np.arange(h, dtype=np.float32)
    xc = np.broadcast_to(((u - cx) / fx)[None, :], (h, w)).ravel()
    yc = np.broadcast_to(((v - cy) / fy)[:, None], (h, w)).ravel()
    # camera roll about the optical axis
    cr, sr = np.cos(scene["roll"]), np.sin(scene["roll"])
    xr, yr = cr * xc - sr * yc, sr * xc + cr * yc
    # camera (x right, y down, z forward) -> world (x right, y up, z forward), then pitch about x
    yw, zw = -yr, np.ones_like(xr)
    cp, sp = np.cos(scene["pitch"]), np.sin(scene["pitch"])
    D = (xr.astype(np.float32), (yw * cp - zw * sp).astype(np.float32), (yw * sp + zw * cp).astype(np.float32))
    O = (0.0, scene["cam_h"], 0.0)
    return O, D  # parameter t along D is the camera z-depth


def _shift_or(m, r):
    out = m.copy()
    for _ in range(r):
        o = out.copy()
        o[1:] |= out[:-1]
        o[:-1] |= out[1:]
        o[:, 1:] |= out[:, :-1]
        o[:, :-1] |= out[:, 1:]
        out = o
    return out


def render_frame(seed: int, index: int, split: str = "train", height: int = INPUT_HEIGHT,
                 width: int = INPUT_WIDTH, intrinsics=MAI_INTRINSICS):
    """Render one frame. Returns (rgb uint8 [H, W, 3], depth uint16 millimetres [H, W], 0 = invalid)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.get(split, 7), int(index)]))
    scene = _make_scene(rng)
    noise = _Noise(rng)
    O, D = _camera_rays(scene, height, width, intrinsics)
    n = height * width
    objs = scene["objs"]

    t_best = np.full(n, _INF, np.float32)
    obj_id = np.full(n, -1, np.int16)
    for k, o in enumerate(objs):
        t = o.hit(O, D)
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        obj_id[closer] = k

    hit = np.isfinite(t_best)
    idx = np.nonzero(hit)[0]
    Dh = np.stack([d[idx] for d in D])
    th = t_best[idx]
    P = np.asarray(O, np.float32)[:, None] + th * Dh
    dnorm = np.sqrt((Dh * Dh).sum(0))
    view = Dh / dnorm  # unit view direction
    dist = th * dnorm
    albedo = np.empty((3, idx.size), np.float32)
    normal = np.empty((3, idx.size), np.float32)
    oid = obj_id[idx]
    fx = intrinsics[0]
    for k, o in enumerate(objs):
        sel = np.nonzero(oid == k)[0]
        if sel.size == 0:
            continue
        Pl, Nl, Nw = o.local_point_normal(P[:, sel])
        normal[:, sel] = Nw
        cosv = np.maximum(np.abs((Nw * view[:, sel]).sum(0)), 0.15)
        footprint = th[sel] / fx / cosv  # world size of one pixel on the surface
        base = np.broadcast_to(o.albedo[:, None], (3, sel.size)).copy()
        tex = _texture(o, Pl, Nl, footprint, noise)
        contrast = np.full(sel.size, o.contrast, np.float32)
        if o.kind == "room":  # floor and ceiling get their own materials
            fm = o.extra["floor_mat"]
            flo = Nw[1] > 0.5
            if flo.any():
                fobj = _Obj("floor", {}, **fm)
                tex[flo] = _texture(fobj, Pl[:, flo], Nl[:, flo], footprint[flo], noise)
                base[:, flo] = fm["albedo"][:, None]
                contrast[flo] = fm["contrast"]
            ceil = Nw[1] < -0.5
            base[:, ceil] = o.extra["ceil_albedo"][:, None]
            tex[ceil] *= 0.2
        albedo[:, sel] = np.clip(base * (1 + contrast * tex), 0.0, 1.0)

    # lighting with cast shadows from the objects (not the room / floor / far blocks behind)
    casters = [o for o in objs if o.casts_shadow and not (o.kind == "box" and o.params["c"][2] > 17)]
    Ps = P + normal * 2e-3
    if scene["indoor"]:
        Ldir = scene["light"][:, None] - Ps
        ldist2 = (Ldir * Ldir).sum(0)
        lunit = Ldir / np.sqrt(ldist2)
        diffuse = np.maximum((normal * lunit).sum(0), 0) * scene["light_power"] / (1 + ldist2)
        tmax = 1.0
        ambient = 0.12
    else:
        Ldir = np.broadcast_to(scene["sun"][:, None], Ps.shape)
        diffuse = np.maximum((normal * Ldir).sum(0), 0) * 1.0
        tmax = np.inf
        ambient = 0.3 + 0.12 * normal[1]
    lit = diffuse > 0
    if lit.any() and casters:
        li = np.nonzero(lit)[0]
        Os = tuple(Ps[k, li] for k in range(3))
        Ds = tuple(np.ascontiguousarray(Ldir[k, li]) for k in range(3))
        shadow = np.zeros(li.size, bool)
        for o in casters:
            shadow |= o.hit(Os, Ds) < tmax
        diffuse[li[shadow]] = 0
    shade = ambient + diffuse
    col = albedo * shade

    img = np.empty((3, n), np.float32)
    if scene["indoor"]:
        img[:, :] = 0.0
        img[:, idx] = col
    else:
        elev = np.clip(D[1] / np.sqrt(D[0] ** 2 + D[1] ** 2 + D[2] ** 2), 0, 1)
        sky = scene["sky_hor"][:, None] * (1 - elev) ** 2 + scene["sky_top"][:, None] * (1 - (1 - elev) ** 2)
        img[:, :] = sky
        haze = 1 - np.exp(-dist / scene["fog"])
        img[:, idx] = col * (1 - haze) + scene["sky_hor"][:, None] * haze
    # exposure, gamma, sensor noise
    exposure = float(rng.uniform(0.85, 1.25))
    img = np.clip(img * exposure, 0, 1) ** (1 / 2.2) * 255
    img = img.reshape(3, height, width).transpose(1, 2, 0)
    img = img + rng.normal(0, 1.5, (height, width, 1)).astype(np.float32)
    rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    # --- depth with sensor-like invalid pixels
    depth = np.zeros(n, np.float32)
    depth[idx] = th
    grazing = np.zeros(n, bool)
    grazing[idx] = np.abs((normal * view).sum(0)) < 0.08
    depth = depth.reshape(height, width)
    valid = (depth >= MIN_VALID_DEPTH) & (depth <= MAX_DEPTH) & ~grazing.reshape(height, width)
    # dropouts along depth discontinuities, in blobs
    d = np.where(hit.reshape(height, width), depth, 1e4)
    jump = np.zeros((height, width), bool)
    rel_x = np.abs(d[:, 1:] - d[:, :-1]) > 0.04 * np.minimum(d[:, 1:], d[:, :-1])
    rel_y = np.abs(d[1:] - d[:-1]) > 0.04 * np.minimum(d[1:], d[:-1])
    jump[:, 1:] |= rel_x
    jump[:, :-1] |= rel_x
    jump[1:] |= rel_y
    jump[:-1] |= rel_y
    edge = _shift_or(jump, int(rng.integers(1, 4)))
    cell = 8
    blob = rng.random((height // cell + 1, width // cell + 1), dtype=np.float32)
    blob = np.repeat(np.repeat(blob, cell, 0), cell, 1)[:height, :width]
    valid &= ~(edge & (blob < rng.uniform(0.3, 0.8)))
    # a few specular / low-albedo blobs without return
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(0, 3))):
        cy_, cx_ = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(4, 25), rng.uniform(4, 25)
        valid &= ((yy - cy_) / ry) ** 2 + ((xx - cx_) / rx) ** 2 > 1
    mm = np.where(valid, np.round(depth * DEPTH_SCALE), 0)
    depth_mm = np.clip(mm, 0, 65535).astype(np.uint16)
    return rgb, depth_mm


# --------------------------------------------------------------------------------------------- writing


def _atomic_png(array, path, mode=None):
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    img.save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, path)


def write_frame(out_dir: str, split: str, index: int, seed: int) -> str:
    rgb, depth = render_frame(seed, index, split)
    stem = f"{index:05d}"
    _atomic_png(rgb, os.path.join(out_dir, split, "rgb", stem + ".png"))
    _atomic_png(depth, os.path.join(out_dir, split, "depth", stem + ".png"))
    return stem


def _work(args):
    return write_frame(*args)


def _remove_frames_beyond(out_dir: str, counts: dict) -> None:
    """Delete ``NNNNN.png`` frames with index >= the split's new count (left by an earlier, larger run), so the
    folder holds exactly the frames asked for: the pipeline pairs every file it finds."""
    for split, n in counts.items():
        for sub in ("rgb", "depth"):
            folder = os.path.join(out_dir, split, sub)
            for name in os.listdir(folder):
                stem, ext = os.path.splitext(name)
                if ext == ".png" and len(stem) == 5 and stem.isdigit() and int(stem) >= n:
                    os.remove(os.path.join(folder, name))


def generate(out_dir: str, n_train: int, n_val: int, seed: int = 0, workers: int | None = None,
             progress: bool = True) -> dict:
    """Write the data set; returns the manifest dict (with ``seconds`` and ``frames_per_second``)."""

    jobs = []
    for split, n in (("train", n_train), ("local_val", n_val)):
        for sub in ("rgb", "depth"):
            os.makedirs(os.path.join(out_dir, split, sub), exist_ok=True)
        jobs += [(out_dir, split, i, seed) for i in range(n)]
    man_path = os.path.join(out_dir, MANIFEST)
    if os.path.exists(man_path):
        os.remove(man_path)
    _remove_frames_beyond(out_dir, {"train": n_train, "local_val": n_val})
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    t0 = time.perf_counter()
    bar = progress_bar(total=len(jobs), desc="synthetic frames", unit="frame", disable=not progress)
    if workers == 1:
        for j in jobs:
            _work(j)
            bar.update(1)
    else:
        # fork is cheap, but unsafe once TensorFlow (threads) is loaded in this process
        ctx = mp.get_context("spawn" if "tensorflow" in sys.modules else "fork")
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_work, jobs, chunksize=2):
                bar.update(1)
    bar.close()
    dt = time.perf_counter() - t0
    manifest = dict(version=GENERATOR_VERSION, seed=seed, train=n_train, local_val=n_val,
                    height=INPUT_HEIGHT, width=INPUT_WIDTH, intrinsics=list(MAI_INTRINSICS),
                    seconds=round(dt, 3), workers=workers, frames_per_second=round(len(jobs) / max(dt, 1e-9), 3))
    tmp = man_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, man_path)
    return manifest


def ensure_synthetic(out_dir: str, n_train: int, n_val: int, seed: int = 0, workers: int | None = None,
                     progress: bool = True) -> dict:
    """Generate the set unless a complete one with the same parameters is already there (for ``make demo``)."""
    man_path = os.path.join(out_dir, MANIFEST)
    try:
        with open(man_path) as f:
            man = json.load(f)
        same = (man.get("version"), man.get("seed"), man.get("train"), man.get("local_val")) == (
            GENERATOR_VERSION, seed, n_train, n_val)
        complete = all(
            os.path.exists(os.path.join(out_dir, s, sub, f"{i:05d}.png"))
            for s, n in (("train", n_train), ("local_val", n_val)) for sub in ("rgb", "depth") for i in range(n))
        if same and complete:
            man["reused"] = True
            return man
    except (OSError, ValueError):
        pass
    return generate(out_dir, n_train, n_val, seed, workers, progress)
