"""The price model: dataset adapters, the scikit-learn pipeline and its training.

    from training.price.train import train_price_model
    run_dir = train_price_model("hm", data_root="data", out_dir="runs/price-hm")  # data/hm/articles.csv, ...
"""
