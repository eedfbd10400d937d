"""The product-group label set shared by training, export and serving."""

# The nine H&M product groups with 1,000 or more articles in the full Kaggle
# articles table. Their order here is the class-index order of every model, unless
# a run drops a class that has too few images (the run then stores its own list).
PRODUCT_GROUPS: tuple[str, ...] = (
    "Garment Upper body",
    "Garment Lower body",
    "Garment Full body",
    "Accessories",
    "Underwear",
    "Shoes",
    "Swimwear",
    "Socks & Tights",
    "Nightwear",
)
