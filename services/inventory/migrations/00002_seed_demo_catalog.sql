-- The demo catalog: what the storefront, the k6 scenarios and the workshop
-- labs sell. Some products are nearly sold out (0 to 3 units) so that
-- rejected reservations show up early in a demo.

-- +goose Up
INSERT INTO products (sku, name, description, price_minor, currency, image_ref) VALUES
('BAG-TOTE-CANVAS', 'Canvas Tote Bag', 'Heavy 12 oz natural cotton canvas tote with long handles and an inner pocket. Carries a laptop and the week''s groceries.', 1990, 'EUR', '/images/BAG-TOTE-CANVAS.svg'),
('BEANIE-MERINO', 'Merino Beanie', 'Rib-knit beanie in soft, non-itchy merino wool. One size, charcoal.', 2490, 'EUR', '/images/BEANIE-MERINO.svg'),
('BOTTLE-STEEL-750', 'Insulated Steel Bottle 750 ml', 'Double-walled stainless steel keeps drinks cold for 24 hours or hot for 12. Leak-proof screw cap.', 2990, 'EUR', '/images/BOTTLE-STEEL-750.svg'),
('CABLE-USB-C-2M', 'USB-C Cable 2 m', 'Braided USB-C to USB-C cable with 100 W power delivery and 10 Gbit/s data.', 1490, 'EUR', '/images/CABLE-USB-C-2M.svg'),
('CAP-BASEBALL-NAVY', 'Navy Baseball Cap', 'Six-panel cotton twill cap with an embroidered gopher and an adjustable brass buckle.', 2200, 'EUR', '/images/CAP-BASEBALL-NAVY.svg'),
('COASTER-CORK-SET', 'Cork Coaster Set (6)', 'Six round coasters of natural cork, 10 cm across. They keep coffee rings off the desk.', 1200, 'EUR', '/images/COASTER-CORK-SET.svg'),
('HOODIE-ZIP-GREY', 'Grey Zip Hoodie', 'Heather grey zip hoodie in brushed organic cotton fleece, with kangaroo pockets. Sizes S to XXL.', 5900, 'EUR', '/images/HOODIE-ZIP-GREY.svg'),
('KEYCHAIN-GOPHER', 'Gopher Keychain', 'Die-cast metal keychain of the Go gopher, enamel colours, split ring.', 690, 'EUR', '/images/KEYCHAIN-GOPHER.svg'),
('LANYARD-BLUE', 'Conference Lanyard', 'Woven blue lanyard with a breakaway safety clip and a swivel hook for badges and keys.', 490, 'EUR', '/images/LANYARD-BLUE.svg'),
('MOUSEPAD-XL', 'XL Desk Mat', '90 x 40 cm desk mat with stitched edges and a non-slip rubber base. Fits a keyboard and a mouse.', 2490, 'EUR', '/images/MOUSEPAD-XL.svg'),
('MUG-CLASSIC', 'Classic Mug', 'White 330 ml stoneware mug with the microshop logo. Dishwasher and microwave safe.', 1290, 'EUR', '/images/MUG-CLASSIC.svg'),
('MUG-ENAMEL', 'Enamel Camp Mug', 'Lightweight 350 ml enamelled steel mug with a rolled rim, for the office or the campsite.', 1490, 'EUR', '/images/MUG-ENAMEL.svg'),
('MUG-TRAVEL', 'Travel Mug', 'Vacuum-insulated 400 ml travel mug with a one-hand sliding lid. Fits car cup holders.', 2490, 'EUR', '/images/MUG-TRAVEL.svg'),
('NOTEBOOK-A5-DOT', 'Dotted A5 Notebook', 'Hardcover A5 notebook: 192 numbered pages of 100 gsm dotted paper, lay-flat binding and a ribbon marker.', 1590, 'EUR', '/images/NOTEBOOK-A5-DOT.svg'),
('NOTEBOOK-A5-LINED', 'Lined A5 Notebook', 'Hardcover A5 notebook with 192 lined pages, an elastic closure and a back pocket.', 1590, 'EUR', '/images/NOTEBOOK-A5-LINED.svg'),
('PEN-GEL-SET', 'Gel Pen Set (4)', 'Four 0.5 mm gel pens in black, blue, red and green with quick-drying ink.', 890, 'EUR', '/images/PEN-GEL-SET.svg'),
('PIN-ENAMEL-SET', 'Enamel Pin Set', 'Three hard-enamel pins: a gopher, a coffee cup and a rubber duck, with rubber clutches.', 1190, 'EUR', '/images/PIN-ENAMEL-SET.svg'),
('PLUSH-GOPHER', 'Gopher Plush', 'Soft 25 cm plush gopher with embroidered eyes. Safe for ages 3 and up.', 2490, 'EUR', '/images/PLUSH-GOPHER.svg'),
('POSTER-A2-ARCH', 'Architecture Poster A2', 'A2 print of a microservices architecture diagram on 200 gsm matte paper. Shipped rolled.', 1890, 'EUR', '/images/POSTER-A2-ARCH.svg'),
('SOCKS-STRIPED', 'Striped Socks', 'Combed cotton crew socks with colourful stripes. EU sizes 39-42 and 43-46.', 990, 'EUR', '/images/SOCKS-STRIPED.svg'),
('STICKER-PACK', 'Sticker Pack', 'Ten weatherproof vinyl stickers for laptops and bottles, including the 100% uptime badge.', 590, 'EUR', '/images/STICKER-PACK.svg'),
('TSHIRT-ORGANIC-BLACK', 'Organic T-Shirt, Black', 'Black crew-neck T-shirt of 180 gsm organic cotton with a small chest print. Unisex sizes S to XXL.', 2490, 'EUR', '/images/TSHIRT-ORGANIC-BLACK.svg'),
('TSHIRT-ORGANIC-WHITE', 'Organic T-Shirt, White', 'White crew-neck T-shirt of 180 gsm organic cotton with a small chest print. Unisex sizes S to XXL.', 2490, 'EUR', '/images/TSHIRT-ORGANIC-WHITE.svg'),
('UMBRELLA-COMPACT', 'Compact Umbrella', 'Automatic open-and-close umbrella with a windproof fibreglass frame. Folds to 29 cm.', 2790, 'EUR', '/images/UMBRELLA-COMPACT.svg');

INSERT INTO stock (sku, available, reserved) VALUES
('BAG-TOTE-CANVAS', 40, 0),
('BEANIE-MERINO', 3, 0),
('BOTTLE-STEEL-750', 25, 0),
('CABLE-USB-C-2M', 8, 0),
('CAP-BASEBALL-NAVY', 18, 0),
('COASTER-CORK-SET', 60, 0),
('HOODIE-ZIP-GREY', 2, 0),
('KEYCHAIN-GOPHER', 120, 0),
('LANYARD-BLUE', 0, 0),
('MOUSEPAD-XL', 15, 0),
('MUG-CLASSIC', 50, 0),
('MUG-ENAMEL', 1, 0),
('MUG-TRAVEL', 12, 0),
('NOTEBOOK-A5-DOT', 35, 0),
('NOTEBOOK-A5-LINED', 0, 0),
('PEN-GEL-SET', 80, 0),
('PIN-ENAMEL-SET', 2, 0),
('PLUSH-GOPHER', 3, 0),
('POSTER-A2-ARCH', 20, 0),
('SOCKS-STRIPED', 45, 0),
('STICKER-PACK', 200, 0),
('TSHIRT-ORGANIC-BLACK', 30, 0),
('TSHIRT-ORGANIC-WHITE', 1, 0),
('UMBRELLA-COMPACT', 10, 0);

-- +goose Down
DELETE FROM stock WHERE sku IN ('BAG-TOTE-CANVAS', 'BEANIE-MERINO', 'BOTTLE-STEEL-750', 'CABLE-USB-C-2M',
    'CAP-BASEBALL-NAVY', 'COASTER-CORK-SET', 'HOODIE-ZIP-GREY', 'KEYCHAIN-GOPHER', 'LANYARD-BLUE', 'MOUSEPAD-XL',
    'MUG-CLASSIC', 'MUG-ENAMEL', 'MUG-TRAVEL', 'NOTEBOOK-A5-DOT', 'NOTEBOOK-A5-LINED', 'PEN-GEL-SET',
    'PIN-ENAMEL-SET', 'PLUSH-GOPHER', 'POSTER-A2-ARCH', 'SOCKS-STRIPED', 'STICKER-PACK', 'TSHIRT-ORGANIC-BLACK',
    'TSHIRT-ORGANIC-WHITE', 'UMBRELLA-COMPACT');
DELETE FROM products WHERE sku IN ('BAG-TOTE-CANVAS', 'BEANIE-MERINO', 'BOTTLE-STEEL-750', 'CABLE-USB-C-2M',
    'CAP-BASEBALL-NAVY', 'COASTER-CORK-SET', 'HOODIE-ZIP-GREY', 'KEYCHAIN-GOPHER', 'LANYARD-BLUE', 'MOUSEPAD-XL',
    'MUG-CLASSIC', 'MUG-ENAMEL', 'MUG-TRAVEL', 'NOTEBOOK-A5-DOT', 'NOTEBOOK-A5-LINED', 'PEN-GEL-SET',
    'PIN-ENAMEL-SET', 'PLUSH-GOPHER', 'POSTER-A2-ARCH', 'SOCKS-STRIPED', 'STICKER-PACK', 'TSHIRT-ORGANIC-BLACK',
    'TSHIRT-ORGANIC-WHITE', 'UMBRELLA-COMPACT');
