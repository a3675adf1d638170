"""SynthPEDES rendering: draws one planned image with PIL (`render_image`), a pure function of the plan."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .attributes import COLORS, HAIR_COLORS, SKIN_TONES
from .planning import Identity, Nuisance


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(channel * factor))) for channel in color)  # type: ignore[return-value]


class _Figure:
    """Draws one pedestrian with PIL primitives, in units of the person's height (`unit`) from the top of the head."""

    def __init__(self, draw: ImageDraw.ImageDraw, identity: Identity, nuisance: Nuisance, height: int, width: int):
        self.draw = draw
        self.attributes = identity.attributes
        self.view = nuisance.view
        self.stride = nuisance.stride
        self.unit = nuisance.scale * height * identity.height
        self.feet = nuisance.feet * height
        self.top = self.feet - self.unit
        self.center = width * (0.5 + nuisance.shift)
        side = self.view in ("left", "right")
        self.half_width = self.unit * (0.055 if side else 0.085) * identity.build
        self.facing = {"left": -1.0, "right": 1.0}.get(self.view, 0.0)
        self.skin = SKIN_TONES[identity.skin]

    def y(self, fraction: float) -> float:
        return self.top + fraction * self.unit

    def box(self, x0: float, f0: float, x1: float, f1: float, color: tuple[int, int, int]) -> None:
        """A rectangle between horizontal pixel positions x0..x1 and height fractions f0..f1."""
        self.draw.rectangle([min(x0, x1), self.y(f0), max(x0, x1), self.y(f1)], fill=color)

    def color(self, key: str) -> tuple[int, int, int]:
        return COLORS[self.attributes[key]]

    def render(self) -> None:
        attributes = self.attributes
        if attributes["held"] == "umbrella":
            self._umbrella_shaft()
        if attributes["hair_style"] == "long" and self.view != "back":
            self._long_hair_behind()
        if attributes["bag"] == "suitcase":
            self._suitcase()
        if attributes["bag"] == "backpack" and self.view in ("left", "right"):
            self.box(
                self.center - self.facing * self.half_width * 2.2, 0.17, self.center, 0.42, self.color("bag_color")
            )
        self._legs()
        self._torso()
        self._arms()
        self._head()
        if attributes["scarf"]:
            self.box(
                self.center - self.half_width * 0.8,
                0.135,
                self.center + self.half_width * 0.8,
                0.175,
                self.color("scarf_color"),
            )
        self._bag_front()
        if attributes["held"] == "phone" and self.view != "back":
            hand_x = self.center + (self.facing or 0.5) * self.half_width * 0.7
            self.box(hand_x - 0.015 * self.unit, 0.30, hand_x + 0.015 * self.unit, 0.35, (20, 20, 24))
        if attributes["held"] == "umbrella":
            self._umbrella_canopy()

    def _legs(self) -> None:
        attributes, unit = self.attributes, self.unit
        lower = attributes["lower_type"]
        leg_width = 0.06 * unit * (0.8 if self.view in ("left", "right") else 1.0)
        swing = self.stride * 0.09 * unit if self.view in ("left", "right") else self.stride * 0.015 * unit
        hip_y, ankle_y = self.y(0.5), self.y(0.94)
        for sign in (-1.0, 1.0):
            hip_x = self.center + sign * (0.045 * unit if self.view in ("front", "back") else 0.01 * unit)
            ankle_x = hip_x + sign * swing
            covered = lower in ("trousers", "jeans", "long skirt")
            leg_color = COLORS[attributes["lower_color"]] if covered else self.skin
            self.draw.polygon(
                [
                    (hip_x - leg_width / 2, hip_y),
                    (hip_x + leg_width / 2, hip_y),
                    (ankle_x + leg_width / 2, ankle_y),
                    (ankle_x - leg_width / 2, ankle_y),
                ],
                fill=leg_color,
            )
            if lower == "jeans":  # a lighter seam tells jeans from trousers
                self.draw.line(
                    [(hip_x, hip_y), (ankle_x, ankle_y)], fill=_shade(leg_color, 1.35), width=max(1, int(unit * 0.006))
                )
            if lower == "shorts":
                knee_x, knee_y = hip_x + sign * swing * 0.35, self.y(0.66)
                self.draw.polygon(
                    [
                        (hip_x - leg_width * 0.6, hip_y),
                        (hip_x + leg_width * 0.6, hip_y),
                        (knee_x + leg_width * 0.6, knee_y),
                        (knee_x - leg_width * 0.6, knee_y),
                    ],
                    fill=COLORS[attributes["lower_color"]],
                )
            self._shoe(ankle_x, leg_width)
        if lower in ("skirt", "long skirt"):
            hem = 0.72 if lower == "skirt" else 0.92
            spread = self.half_width * (1.3 if lower == "skirt" else 1.5)
            self.draw.polygon(
                [
                    (self.center - self.half_width, self.y(0.48)),
                    (self.center + self.half_width, self.y(0.48)),
                    (self.center + spread, self.y(hem)),
                    (self.center - spread, self.y(hem)),
                ],
                fill=COLORS[attributes["lower_color"]],
            )

    def _shoe(self, ankle_x: float, leg_width: float) -> None:
        kind = self.attributes["shoes_type"]
        color = self.color("shoes_color")
        top = {"boots": 0.88, "sandals": 0.965, "sneakers": 0.94, "shoes": 0.945}[kind]
        toe = self.facing * leg_width * 0.6
        self.draw.rectangle(
            [
                ankle_x - leg_width * 0.65 + min(toe, 0),
                self.y(top),
                ankle_x + leg_width * 0.65 + max(toe, 0),
                self.y(0.995),
            ],
            fill=color,
        )
        if kind == "sneakers":  # white soles
            self.draw.rectangle(
                [
                    ankle_x - leg_width * 0.65 + min(toe, 0),
                    self.y(0.98),
                    ankle_x + leg_width * 0.65 + max(toe, 0),
                    self.y(0.995),
                ],
                fill=(240, 240, 240),
            )

    def _torso(self) -> None:
        attributes = self.attributes
        kind = attributes["upper_type"]
        color = self.color("upper_color")
        left, right = self.center - self.half_width, self.center + self.half_width
        hem = {"coat": 0.64, "jacket": 0.5, "dress": 0.5, "sweater": 0.5, "shirt": 0.5, "t-shirt": 0.49, "vest": 0.49}[
            kind
        ]
        self.draw.rectangle([left, self.y(0.155), right, self.y(hem)], fill=color)
        if kind == "dress":
            flare = self.half_width * 1.45
            self.draw.polygon(
                [
                    (left, self.y(0.48)),
                    (right, self.y(0.48)),
                    (self.center + flare, self.y(0.76)),
                    (self.center - flare, self.y(0.76)),
                ],
                fill=color,
            )
        pattern = attributes["upper_pattern"]
        if pattern != "plain":
            second = self.color("upper_pattern_color")
            step = max(2.0, 0.035 * self.unit)
            line_width = max(1, int(step * 0.4))
            y = self.y(0.17)
            while y < self.y(hem) - 1:
                self.draw.line([(left, y), (right, y)], fill=second, width=line_width)
                y += step
            if pattern == "checked":
                x = left + step / 2
                while x < right:
                    self.draw.line([(x, self.y(0.155)), (x, self.y(hem))], fill=second, width=line_width)
                    x += step
        if self.view != "back":
            if kind in ("jacket", "coat"):  # an open front
                self.draw.line(
                    [
                        (self.center + self.facing * self.half_width * 0.5, self.y(0.16)),
                        (self.center + self.facing * self.half_width * 0.5, self.y(hem)),
                    ],
                    fill=_shade(color, 0.55),
                    width=max(1, int(self.unit * 0.008)),
                )
            elif kind == "shirt":  # a collar
                collar = self.half_width * 0.45
                self.draw.polygon(
                    [
                        (self.center - collar, self.y(0.155)),
                        (self.center + collar, self.y(0.155)),
                        (self.center, self.y(0.2)),
                    ],
                    fill=_shade(color, 1.3),
                )
        if kind == "sweater":  # a ribbed hem band
            self.box(left, hem - 0.025, right, hem, _shade(color, 0.75))

    def _arms(self) -> None:
        unit = self.unit
        # how far down the arm the sleeve reaches (shoulder 0 .. hand 1); a vest has none
        sleeve = {"t-shirt": 0.28, "vest": 0.0, "dress": 0.12}.get(self.attributes["upper_type"], 1.0)
        arm_width = 0.038 * unit
        swing = self.stride * 0.08 * unit if self.view in ("left", "right") else 0.0
        front_or_back = self.view in ("front", "back")
        shoulder_y, hand_y = self.y(0.165), self.y(0.5)
        for sign in (-1.0, 1.0) if front_or_back else (-self.facing,):
            shoulder_x = self.center + sign * (self.half_width + arm_width / 2) if front_or_back else self.center
            hand_x = shoulder_x + swing * sign
            self.draw.line([(shoulder_x, shoulder_y), (hand_x, hand_y)], fill=self.skin, width=max(1, int(arm_width)))
            if sleeve > 0:
                sleeve_end = (shoulder_x + (hand_x - shoulder_x) * sleeve, shoulder_y + (hand_y - shoulder_y) * sleeve)
                self.draw.line(
                    [(shoulder_x, shoulder_y), sleeve_end],
                    fill=self.color("upper_color"),
                    width=max(1, int(arm_width * 1.15)),
                )

    def _head(self) -> None:
        attributes, unit = self.attributes, self.unit
        radius = 0.058 * unit
        cx, cy = self.center + self.facing * 0.01 * unit, self.y(0.075)
        self.box(self.center - 0.018 * unit, 0.11, self.center + 0.018 * unit, 0.16, self.skin)  # neck
        style = attributes["hair_style"]
        hair = HAIR_COLORS[attributes["hair_color"]] if attributes["hair_color"] else self.skin
        face_visible = self.view != "back"
        head_color = self.skin if face_visible or style == "bald" else hair
        self.draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=head_color)
        if style != "bald":
            # hair covers the top half of the head (and the back of the head when seen from behind)
            self.draw.pieslice(
                [cx - radius * 1.05, cy - radius * 1.1, cx + radius * 1.05, cy + radius * 0.9], 180, 360, fill=hair
            )
            if self.view in ("left", "right"):
                back_x = cx - self.facing * radius * 0.55
                self.draw.ellipse(
                    [back_x - radius * 0.55, cy - radius * 0.9, back_x + radius * 0.55, cy + radius * 0.6], fill=hair
                )
            if style == "long" and self.view == "back":
                self.box(cx - radius * 1.05, 0.075, cx + radius * 1.05, 0.26, hair)
            elif style == "ponytail":
                tail_x = cx - (self.facing or 0.0) * radius * 1.1
                self.draw.ellipse(
                    [tail_x - radius * 0.3, cy - radius * 0.2, tail_x + radius * 0.3, cy + radius * 1.6], fill=hair
                )
            elif style == "bun":
                self.draw.ellipse(
                    [cx - radius * 0.45, cy - radius * 1.75, cx + radius * 0.45, cy - radius * 0.85], fill=hair
                )
        hat = attributes["hat"]
        if hat != "none":
            color = self.color("hat_color")
            self.draw.pieslice(
                [cx - radius * 1.1, cy - radius * 1.25, cx + radius * 1.1, cy + radius * 0.6], 180, 360, fill=color
            )
            if hat == "cap" and self.view != "back":
                brim = radius * (1.0 if self.facing else 0.6)
                brim_x = cx + (self.facing or 0.0) * radius
                self.draw.rectangle(
                    [brim_x - brim, cy - radius * 0.4, brim_x + brim, cy - radius * 0.22], fill=_shade(color, 0.85)
                )
            elif hat == "beanie":
                self.draw.rectangle(
                    [cx - radius * 1.1, cy - radius * 0.5, cx + radius * 1.1, cy - radius * 0.25],
                    fill=_shade(color, 0.8),
                )
        if attributes["glasses"] and face_visible:
            lens = radius * 0.3
            width = max(1, int(unit * 0.006))
            for offset in (-0.4, 0.4) if not self.facing else (self.facing * 0.55,):
                lx = cx + offset * radius
                self.draw.ellipse(
                    [lx - lens, cy - lens * 0.5, lx + lens, cy + lens * 1.5], outline=(15, 15, 15), width=width
                )

    def _long_hair_behind(self) -> None:
        hair = HAIR_COLORS[self.attributes["hair_color"]]
        radius = 0.058 * self.unit
        self.box(self.center - radius * 1.1, 0.06, self.center + radius * 1.1, 0.25, hair)

    def _bag_front(self) -> None:
        bag = self.attributes["bag"]
        if bag == "none" or bag == "suitcase":
            return
        color = self.color("bag_color")
        unit, width = self.unit, max(1, int(self.unit * 0.008))
        if bag == "backpack":
            if self.view == "back":
                self.box(self.center - self.half_width * 0.85, 0.18, self.center + self.half_width * 0.85, 0.43, color)
            elif self.view == "front":
                for sign in (-1.0, 1.0):
                    x = self.center + sign * self.half_width * 0.6
                    self.draw.line([(x, self.y(0.16)), (x, self.y(0.36))], fill=_shade(color, 0.8), width=width * 2)
            return
        side = self.facing or 1.0
        if bag == "shoulder bag":
            hip_x = self.center + side * self.half_width * 1.1
            self.draw.line(
                [(self.center - side * self.half_width * 0.8, self.y(0.16)), (hip_x, self.y(0.44))],
                fill=(20, 20, 20),
                width=width,
            )
            self.draw.rectangle([hip_x - 0.035 * unit, self.y(0.42), hip_x + 0.035 * unit, self.y(0.5)], fill=color)
        else:  # handbag: hangs from a hand
            hand_x = self.center + side * (self.half_width + 0.03 * unit)
            self.draw.rectangle([hand_x - 0.03 * unit, self.y(0.49), hand_x + 0.03 * unit, self.y(0.55)], fill=color)

    def _suitcase(self) -> None:
        side = -self.facing if self.facing else 1.0
        x = self.center + side * (self.half_width + 0.09 * self.unit)
        color = self.color("bag_color")
        self.box(x - 0.06 * self.unit, 0.62, x + 0.06 * self.unit, 0.97, color)
        self.draw.line(
            [(x, self.y(0.62)), (x - side * 0.03 * self.unit, self.y(0.5))],
            fill=(40, 40, 40),
            width=max(1, int(self.unit * 0.008)),
        )

    def _umbrella_shaft(self) -> None:
        x = self.center + (self.facing or 1.0) * (self.half_width + 0.02 * self.unit)
        self.draw.line([(x, self.y(0.02)), (x, self.y(0.45))], fill=(50, 50, 50), width=max(1, int(self.unit * 0.008)))

    def _umbrella_canopy(self) -> None:
        x = self.center + (self.facing or 1.0) * (self.half_width + 0.02 * self.unit)
        radius = 0.15 * self.unit
        top, bottom = self.y(0.02) - radius * 0.55, self.y(0.02) + radius * 0.55
        self.draw.pieslice([x - radius, top, x + radius, bottom], 180, 360, fill=self.color("held_color"))


def make_noise_bank(seed: int, height: int, width: int) -> np.ndarray:
    """Sensor noise is cropped from one seeded bank per run: a fresh normal draw per image would cost more than the
    drawing itself."""
    return np.random.default_rng(seed).standard_normal((2 * height, 2 * width, 3), dtype=np.float32)


def render_image(
    identity: Identity, nuisance: Nuisance, image_size: tuple[int, int], noise_bank: np.ndarray | None = None
) -> Image.Image:
    """Draw one image: background and clutter, the person, an occluding pole, then lighting, blur and noise."""
    height, width = image_size
    image = Image.new("RGB", (width, height), nuisance.wall)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, nuisance.horizon * height, width, height], fill=nuisance.ground)
    for x, y, w, h, color in nuisance.clutter:
        draw.rectangle([x * width - w * width / 2, y * height, x * width + w * width / 2, (y + h) * height], fill=color)
    _Figure(draw, identity, nuisance, height, width).render()
    if nuisance.pole is not None:
        x, w, color = nuisance.pole
        draw.rectangle([x * width, 0, x * width + w * width, height], fill=color)
    if nuisance.blur:
        image = image.filter(ImageFilter.GaussianBlur(nuisance.blur * height / 256))
    pixels = np.asarray(image, dtype=np.float32) * np.asarray(nuisance.gain, dtype=np.float32)
    if noise_bank is None:
        noise_bank = make_noise_bank(0, height, width)
    top = int(nuisance.noise_offset[0] * (noise_bank.shape[0] - height))
    left = int(nuisance.noise_offset[1] * (noise_bank.shape[1] - width))
    pixels += noise_bank[top : top + height, left : left + width] * nuisance.noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
