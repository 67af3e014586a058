"""Everything the agent says without the LLM, in English and Chinese: product lines with their
one-line reasons, and the templated replies used when the LLM is not needed, not trusted or not
answering. Every fact in them comes from a product record or the dialog state."""

from __future__ import annotations

from bijou.agent.state import DialogState
from bijou.catalog.schema import Product

TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "found": "Here are {count} picks{scope}.",
        "found_one": "Here is one pick{scope}.",
        "relaxed": "Nothing matched every detail, so I loosened the {what} filter.",
        "none": "I couldn't find anything{scope}.",
        "cheapest": "The lowest-priced option I have is {title} at {price}.",
        "more_like": "Here are pieces similar to {title}.",
        "complements": "These go well with {title}:",
        "bundle": "A set built around {title}, {total} in all{budget}:",
        "no_bundle": "I couldn't put a set together around {title}{budget}.",
        "compare": "Here is how they differ:",
        "question": "About {title}:",
        "no_facts": "The product listing for {title} doesn't say; I'd rather not guess.",
        "added": "Added {title} ({quantity}) to your cart.",
        "removed": "Removed {title} from your cart.",
        "not_in_cart": "{title} isn't in your cart.",
        "cart": "Your cart ({count} items, {total}):",
        "cart_empty": "Your cart is empty.",
        "blocked": "Got it, I won't show {title} again.",
        "which": "Which one do you mean? Say 'the first one', 'the second one' and so on.",
        "out_of_range": "I showed {count} just now; which one do you mean?",
        "nothing_shown": "Tell me what you're looking for first, and I'll show you some pieces.",
        "greeting": "Hello! I'm Bijou, the shop's assistant. Who are you shopping for, and is "
        "there a budget or a style in mind?",
        "thanks": "You're welcome! Ask me any time.",
        "off_topic": "I can only help with shopping in this store: jewellery, watches, bags and "
        "accessories. What are you looking for today?",
        "chat": "I'm Bijou, this shop's shopping assistant. Tell me who it's for, a budget or a "
        "style, and I'll find pieces for you.",
        "complaint": "I'm sorry this hasn't been helpful. Tell me what you'd like, for example "
        "'silver earrings under 1,500', and I'll try again.",
        "injection": "I can't do that. I'm here to help you find products in this shop.",
        "empty": "Please type what you're looking for, or send a photo.",
        "error": "Sorry, something went wrong on my side. Please try again.",
        "cross_sell": "Goes well with it:",
        "blurb": "{anchor} sets the tone; {items} complete the look, all for {total}.",
    },
    "zh": {
        "found": "为您找到{count}件{scope}。",
        "found_one": "为您找到1件{scope}。",
        "relaxed": "没有完全符合的商品，我放宽了{what}条件。",
        "none": "没有找到{scope}的商品。",
        "cheapest": "目前价格最低的是 {title}，{price}。",
        "more_like": "这些和 {title} 风格相近：",
        "complements": "这些和 {title} 很搭：",
        "bundle": "以 {title} 为主的一套搭配，共{total}{budget}：",
        "no_bundle": "没能围绕 {title} 凑出一套{budget}的搭配。",
        "compare": "它们的区别如下：",
        "question": "关于 {title}：",
        "no_facts": "{title} 的商品信息里没有写这一点，我不想乱猜。",
        "added": "已把 {title}（{quantity}件）加入购物车。",
        "removed": "已从购物车移除 {title}。",
        "not_in_cart": "{title} 不在您的购物车里。",
        "cart": "您的购物车（{count}件，共{total}）：",
        "cart_empty": "您的购物车是空的。",
        "blocked": "好的，不会再给您推荐 {title}。",
        "which": "您指的是哪一件？可以说“第一个”“第二个”。",
        "out_of_range": "刚才只展示了{count}件，您指的是哪一件？",
        "nothing_shown": "请先告诉我您想找什么，我来为您推荐。",
        "greeting": "您好！我是本店的购物助手Bijou。请问是给谁挑选？有预算或喜欢的风格吗？",
        "thanks": "不客气，随时找我！",
        "off_topic": "我只能帮您在本店购物：首饰、手表、包袋和配饰。今天想找点什么？",
        "chat": "我是本店的购物助手Bijou。告诉我送给谁、预算或风格，我来帮您挑选。",
        "complaint": "抱歉没能帮上忙。请告诉我您想要什么，比如“1500以内的银耳环”，我再试试。",
        "injection": "这个我不能做。我在这里帮您挑选本店的商品。",
        "empty": "请输入您想找的商品，或者发一张图片。",
        "error": "抱歉，系统出了点问题，请再试一次。",
        "cross_sell": "可以搭配：",
        "blurb": "{anchor} 定下基调，{items} 完成整体造型，全套只需{total}。",
    },
}

ARTICLE_ZH = {
    "Earrings": "耳环",
    "Pendant": "吊坠",
    "Necklace and Chains": "项链",
    "Ring": "戒指",
    "Bangle": "手镯",
    "Bracelet": "手链",
    "Jewellery Set": "首饰套装",
    "Watches": "手表",
    "Handbags": "手提包",
    "Clutches": "手拿包",
    "Backpacks": "双肩包",
    "Wallets": "钱包",
    "Belts": "腰带",
    "Sunglasses": "太阳镜",
    "Perfume and Body Mist": "香水",
    "Dresses": "连衣裙",
    "Sarees": "纱丽",
    "Scarves": "围巾",
    "Cufflinks": "袖扣",
    "Ties and Cufflinks": "领带袖扣",
    "Messenger Bag": "斜挎包",
    "Laptop Bag": "电脑包",
    "Trolley Bag": "拉杆箱",
}
COLOUR_ZH = {
    "Gold": "金色",
    "Silver": "银色",
    "Rose": "玫瑰色",
    "Copper": "铜色",
    "Steel": "钢色",
    "Black": "黑色",
    "White": "白色",
    "Red": "红色",
    "Blue": "蓝色",
    "Green": "绿色",
    "Pink": "粉色",
    "Purple": "紫色",
    "Brown": "棕色",
    "Yellow": "黄色",
    "Orange": "橙色",
    "Grey": "灰色",
    "Navy Blue": "藏青色",
    "Beige": "米色",
    "Maroon": "酒红色",
    "Multi": "多色",
    "Off White": "米白色",
    "Cream": "奶油色",
    "Bronze": "古铜色",
    "Tan": "棕褐色",
}
METAL_ZH = {
    "Silver": "银",
    "Gold": "金",
    "Brass": "黄铜",
    "Copper": "铜",
    "Metal": "金属",
    "Alloy": "合金",
    "Stainless Steel": "不锈钢",
    "Steel": "钢",
    "Platinum": "铂金",
}
USAGE_ZH = {
    "Casual": "日常",
    "Formal": "正式场合",
    "Party": "派对",
    "Ethnic": "传统节庆",
    "Sports": "运动",
    "Travel": "旅行",
    "Smart Casual": "休闲正装",
}
FILTER_ZH = {
    "usages": "场合",
    "brands": "品牌",
    "colours": "颜色",
    "genders": "性别",
    "articles": "品类",
}
FILTER_EN = {
    "usages": "occasion",
    "brands": "brand",
    "colours": "colour",
    "genders": "gender",
    "articles": "category",
}


def say(language: str, key: str, **values: object) -> str:
    return TEMPLATES[language if language in TEMPLATES else "en"][key].format(**values)


def money(value: float, currency: str) -> str:
    return f"{currency}{value:,.0f}" if value == int(value) else f"{currency}{value:,.2f}"


def article_name(article: str, language: str, plural: bool = False) -> str:
    if language == "zh":
        return ARTICLE_ZH.get(article, article)
    name = article.lower()
    return name + ("s" if plural and not name.endswith("s") else "")


def scope(state: DialogState, language: str, currency: str) -> str:
    """ "silver earrings under ₹2,000" / "2,000以内的银色耳环": the constraints, in words."""
    colours = [c for c in state.colours]
    articles = state.articles[:2] if len(state.articles) <= 2 else []
    if language == "zh":
        parts = []
        if state.max_price is not None:
            parts.append(f"{money(state.max_price, currency)}以内的")
        parts += [COLOUR_ZH.get(c, c) for c in colours[:2]]
        parts += [ARTICLE_ZH.get(a, a) for a in articles]
        return "".join(parts) or "商品"
    words = [c.lower() for c in colours[:2]] + [article_name(a, "en", True) for a in articles]
    text = " ".join(words)
    if state.max_price is not None:
        text += f" under {money(state.max_price, currency)}"
    if state.min_price is not None:
        text += f" from {money(state.min_price, currency)}"
    return f" for {text.strip()}" if text.strip() else ""


def reason(product: Product, state: DialogState, language: str, currency: str) -> str:
    """One line on why this product fits, from its own fields and what the shopper asked."""
    zh = language == "zh"
    parts: list[str] = []
    matched = [t for t in product.tones if t in state.colours]
    tone = matched[0] if matched else (product.colour or "")
    if tone:
        parts.append(f"{COLOUR_ZH.get(tone, tone)}" if zh else f"{tone.lower()} tone")
    if product.metal:
        parts.append(
            f"{METAL_ZH.get(product.metal, product.metal)}材质"
            if zh
            else f"{product.metal.lower()} base"
        )
    if stone := product.attributes.get("Stone Type"):
        parts.append(f"镶{stone}" if zh else f"set with {stone.lower()}")
    if state.occasion and product.usage:
        parts.append(
            f"适合{USAGE_ZH.get(product.usage, product.usage)}"
            if zh
            else f"suits {product.usage.lower()} wear"
        )
    if state.max_price is not None:
        parts.append(
            f"在{money(state.max_price, currency)}预算内"
            if zh
            else f"within your {money(state.max_price, currency)} budget"
        )
    if product.list_price > product.price:
        off = round(100 * (1 - product.price / product.list_price))
        if off >= 5:
            parts.append(f"优惠{off}%" if zh else f"{off}% off")
    text = ("，" if zh else ", ").join(parts[:4])
    return text[:1].upper() + text[1:] if text else ""


def product_line(rank: int | None, product: Product, why: str, currency: str) -> str:
    head = f"{rank}. " if rank is not None else "- "
    brand = f" ({product.brand})" if product.brand and product.brand not in product.title else ""
    line = f"{head}{product.title}{brand}: {money(product.price, currency)}"
    return f"{line}. {why}" if why else line
